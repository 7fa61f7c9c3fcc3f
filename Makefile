# Both `make demo` and `make test` create .venv when it is missing and reuse it afterwards.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export WANDB_MODE ?= offline
export TOKENIZERS_PARALLELISM ?= false

.PHONY: venv test test-slow demo lint bench clean shapes-model

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# torch first, pinned: a CPU wheel here; a looser spec would pull a multi-GB CUDA build.
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

demo: $(STAMP)
	$(VENV)/bin/adaptive-svdprune demo

lint: $(STAMP)
	$(PY) -m ruff check adaptive_svdprune tests benchmarks
	$(PY) -m mypy adaptive_svdprune

# The shapes reference model shipped in the package (tools/train_shapes_model.py): two deterministic stages on
# 1 torch thread, ~30 min on 2 CPU cores: the vision tower alone on per-patch/per-object labels, then projector +
# language model on its frozen, cached features.
shapes-model: $(STAMP)
	# three deterministic stages (model card: adaptive_svdprune/shapes/checkpoint/README.md), ~56 min on 2 CPU cores
	$(PY) tools/train_shapes_model.py --out runs/shapes-vision --seed 0 --data-seed 1 --pca-init --sincos-init \
		--vision-steps 600 --eval-every 100 --steps 1
	$(PY) tools/train_shapes_model.py --init-from runs/shapes-vision --freeze-vision \
		--out runs/shapes-stage2 --seed 1 --data-seed 1 --steps 1800 --eval-every 100 \
		--whiten-projector --word-weight 1 --route-weight 1 --route-layer 1 --attn-weight 0 --readout-weight 1
	$(PY) tools/train_shapes_model.py --init-from runs/shapes-stage2 --freeze-vision \
		--out adaptive_svdprune/shapes/checkpoint --seed 2 --data-seed 2 --steps 600 --eval-every 100 --lr 1e-3 \
		--word-weight 1 --route-weight 1 --route-layer 1 --attn-weight 0 --readout-weight 1
	$(PY) tools/train_shapes_model.py --merge-logs runs/shapes-vision runs/shapes-stage2 adaptive_svdprune/shapes/checkpoint

bench: $(STAMP)
	$(PY) benchmarks/bench_select.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache runs
