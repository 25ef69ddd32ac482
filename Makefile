# The two commands of the README. Both install what is missing first (a second install takes seconds).
.PHONY: install system-deps demo test test-fast clean-demo bundle gpu-check

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

# A folder of every wheel and source archive needed to install on a machine without internet, for the
# target's Python and platform (torch excepted: see local/bundle.py); install with ASRKIT_BUNDLE=bundle.
PYTHON_VERSION ?= 3.11
PLATFORM ?= manylinux_2_28_x86_64
bundle:
	python3 local/bundle.py --python-version $(PYTHON_VERSION) --platform $(PLATFORM) $(if $(HAVE),--have $(HAVE)) $(if $(TORCH_VERSION),--torch-version $(TORCH_VERSION))

# On a machine with a CUDA GPU and no internet: install from bundle/ over the machine's torch, build fast_rnnt
# with CUDA, run the tiny recipe end to end on the GPU; a table of the parts (GPU_CHECK_DIR, default gpu-check/).
gpu-check:
	python3 local/gpu_check.py
