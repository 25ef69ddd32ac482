# The two commands of the README. Both install what is missing first (a second install takes seconds).
.PHONY: install system-deps demo test test-fast clean-demo

install: system-deps
	bash local/install.sh

# Debian packages for the demo corpus (speech synthesis with phone timings) and for its tests.
system-deps:
	bash local/install_system_deps.sh

demo: install
	recipes/timit/run.sh --config demo.yaml --dir demo

# Everything, the end-to-end recipe runs (marked slow) included: what CI runs.
test: install
	.venv/bin/python -m pytest -v --durations=15

# The unit tests of every subpackage, without the slow end-to-end runs: a few minutes.
test-fast: install
	.venv/bin/python -m pytest -m "not slow" --durations=10

clean-demo:
	rm -rf recipes/timit/demo
