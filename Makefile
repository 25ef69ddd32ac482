# The two commands of the README. Both install what is missing first (a second install takes seconds).
.PHONY: install system-deps demo test clean-demo

install: system-deps
	bash local/install.sh

# Debian packages for the demo corpus (speech synthesis with phone timings) and for its tests.
system-deps:
	bash local/install_system_deps.sh

demo: install
	recipes/timit/run.sh --config demo.yaml --dir demo

test: install
	.venv/bin/python -m pytest -v --durations=15

clean-demo:
	rm -rf recipes/timit/demo
