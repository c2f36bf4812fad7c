# The README's two commands: `make demo` and `make test`. Each sets up .venv first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.archspec-installed
TORCH  := torch==2.14.1 torchvision==0.29.1

.PHONY: setup demo test quick lint fuzz bench bench-cuda docs-images clean graphviz templates degradation

setup: $(STAMP) graphviz

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The `dot` program renders SVG/PNG; DOT and Mermaid output work without it.
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null) \
	      || echo "warning: could not install graphviz; SVG/PNG rendering is unavailable"; \
	  else echo "warning: graphviz 'dot' not found; install it (apt-get install graphviz) for SVG/PNG"; fi; }

demo: setup
	$(VENV)/bin/archspec build specs/unet.yaml --render --force

# The suite runs on WORKERS processes (pytest-xdist); WORKERS=0 runs it in this one.
WORKERS ?= 2

test: setup
	$(PY) -m pytest -n $(WORKERS)

# The fast loop: everything but the tests marked slow (the parity and export sweeps
# against torchvision and torch, and the mypy run). `make test` runs them all.
quick: setup
	$(PY) -m pytest -m "not slow" -p no:cacheprovider -n $(WORKERS)

# Side-by-side timings and memory against torchvision (reported, not asserted): writes
# docs/performance.md. A few minutes on a quiet machine; `benchmarks/bench.py --quick` is a smoke test.
bench: setup
	$(PY) benchmarks/bench.py --write docs/performance.md

# The same comparison on a CUDA GPU (AMP bf16, channels_last, torch.compile, optimize="inference"):
# writes docs/performance-cuda.md. `benchmarks/bench_cuda.py --device cpu --smoke` checks the script.
bench-cuda: setup
	$(PY) benchmarks/bench_cuda.py --write docs/performance-cuda.md

# `archspec init` ships the zoo's specs inside the package; a test keeps the copies equal.
templates:
	for f in specs/*.yaml; do [ "$$f" = specs/zoo.yaml ] || cp "$$f" archspec/templates/; done

lint: setup
	$(PY) -m ruff check archspec tests
	$(PY) -m mypy

clean:
	rm -rf build .pytest_cache

# The drawings in docs/rendering.md (name:spec:render args, commas for spaces). A zoo
# spec that does not exist yet is skipped with a message.
DOCS_IMAGES := resnet18:specs/resnet18.yaml: resnet50:specs/resnet.yaml:-p,depth=50 \
	densenet121:specs/densenet.yaml:-p,depth=121 unet:specs/unet.yaml: highway:specs/highway.yaml:

docs-images: graphviz
	@test -x $(VENV)/bin/archspec || { echo "no $(VENV)/bin/archspec: run 'make setup' first"; exit 1; }
	@mkdir -p docs/images
	@for item in $(DOCS_IMAGES); do \
	  name=$${item%%:*}; rest=$${item#*:}; spec=$${rest%%:*}; args=$$(echo "$${rest#*:}" | tr , ' '); \
	  if [ -f "$$spec" ]; then rm -f "docs/images/$$name.png"; \
	    $(VENV)/bin/archspec render "$$spec" $$args -o "docs/images/$$name.png" || exit 1; \
	  else echo "skipping docs/images/$$name.png: $$spec does not exist yet"; fi; \
	done

# Mutation fuzzing of valid specs, then expressions and hostile names (files, Mermaid,
# terminals), for FUZZ_MINUTES minutes each (hypothesis, fresh seeds each
# round): any exception from archspec.check that is not an ArchSpecError fails it.
FUZZ_MINUTES ?= 5
fuzz: setup
	FUZZ_MINUTES=$(FUZZ_MINUTES) $(PY) -m pytest tests/test_fuzz.py tests/test_fuzz_reliability.py -k fuzz_for_minutes -s -p no:cacheprovider

# The cell-segmentation benchmark of docs/training.md: a small U-Net on generated cells
# (CPU, a few minutes); prints one line per epoch and writes runs/unet-cells.
.PHONY: train-cells
train-cells: setup
	$(PY) -m archspec train specs/unet.yaml -p depth=3 -p base=16 --data cells --epochs 4 --batch-size 16 \
	  --out runs/unet-cells --force

# The degradation experiment (He et al. 2015, section 4.2, figure 6): plain-20 and
# plain-56 against ResNet-20 and ResNet-56 (specs/resnet_cifar.yaml, n=3/9, residual
# false/true), each trained by `archspec train`, the four curves drawn by `archspec plot`
# into $(RUNS)/degradation.png. With CIFAR-10 on disk:
#   make degradation DATA=cifar10:path/to/cifar-10-batches-py
# EPOCHS and TRAIN_FLAGS (any archspec train flags, e.g. --device cuda --amp bf16) change
# the recipe; a run folder that already holds a run is refused unless TRAIN_FLAGS=--force.
DATA        ?= cifar10:data/cifar-10-batches-py
EPOCHS      ?= 160
RUNS        ?= runs/degradation
TRAIN_FLAGS ?=
ARCHSPEC    ?= $(PY) -m archspec
DEGRADATION := plain20:3:false plain56:9:false resnet20:3:true resnet56:9:true

degradation:
	@for item in $(DEGRADATION); do \
	  name=$${item%%:*}; rest=$${item#*:}; n=$${rest%%:*}; residual=$${rest#*:}; \
	  echo "== $$name: specs/resnet_cifar.yaml -p n=$$n -p residual=$$residual"; \
	  $(ARCHSPEC) train specs/resnet_cifar.yaml -p n=$$n -p residual=$$residual --data $(DATA) \
	    --epochs $(EPOCHS) --out $(RUNS)/$$name $(TRAIN_FLAGS) || exit 1; \
	done
	$(ARCHSPEC) plot $(foreach item,$(DEGRADATION),$(RUNS)/$(firstword $(subst :, ,$(item)))) \
	  -o $(RUNS)/degradation.png --force
