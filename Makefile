# Grokking at the Edge of Numerical Stability — common tasks. `make help` lists them.
PY ?= python
.DEFAULT_GOAL := help

.PHONY: help
help:  ## list every target with one line each
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-18s %s\n", $$1, $$2}'

.PHONY: install
install:  ## install the package with every extra the tests use: train, repro, wandb, slurm (CPU torch first)
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[test]'

.PHONY: test
test:  ## run the default test suite (slow tests excluded)
	$(PY) -m pytest -q

.PHONY: test-slow
test-slow:  ## run only the slow tests
	$(PY) -m pytest -q -m slow

.PHONY: lint
lint:  ## check style with ruff
	ruff check . && ruff format --check .

.PHONY: format
format:  ## format the code with ruff
	ruff check --fix . && ruff format .

.PHONY: train
train:  ## train the default experiment (⊥AdamW on modular addition, < 1 min on CPU)
	$(PY) train.py

SWEEP ?= precision=float16,float32,float64 optimizer.weight_decay=0,0.1,1
LAUNCHER ?= local

.PHONY: sweep
sweep:  ## run a grid in parallel: make sweep SWEEP="loss=softmax,stablemax seed=0,1" [LAUNCHER=slurm]
	$(PY) train.py -m launcher=$(LAUNCHER) $(SWEEP)

.PHONY: summarize
summarize:  ## table + plot of a sweep: make summarize [DIR=multirun/<date>/<time>] (default: the newest)
	$(PY) scripts/summarize.py $(or $(DIR),$(lastword $(sort $(wildcard multirun/*/*))),multirun/NONE)

.PHONY: figures
figures:  ## redraw every figure and results/CLAIMS.md from results/ (no training, < 2 min)
	$(PY) scripts/figures.py

.PHONY: reproduce
reproduce:  ## re-run every experiment behind the figures into results/ (hours on CPU; use DEVICE=cuda JOBS=8 on a GPU)
	$(PY) scripts/reproduce.py all --device $(or $(DEVICE),auto) --jobs $(or $(JOBS),1)

reproduce-%:  ## re-run one figure's experiments, e.g. make reproduce-fig2
	$(PY) scripts/reproduce.py $* --device $(or $(DEVICE),auto) --jobs $(or $(JOBS),1)

.PHONY: clean
clean:  ## remove run outputs and caches (never results/)
	rm -rf outputs multirun .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

.PHONY: bench
bench:  ## measure ms/epoch of the paper's settings against the matmul floor (writes results/bench.csv)
	$(PY) scripts/bench.py

.PHONY: bench-late
bench-late:  ## only the late-state settings: early and late epochs (their rows in results/bench.csv; trains and caches the states first)
	$(PY) scripts/bench.py --late

.PHONY: figure-times
figure-times:  ## estimate the CPU time of every committed run, per figure (writes results/figure_times_cpu.csv)
	$(PY) scripts/figure_times.py

.PHONY: gpu-batch
gpu-batch:  ## the long runs CPUs cannot afford, side by side on one GPU within a deadline (scripts/gpu_batch.py)
	$(PY) scripts/gpu_batch.py --mps

.PHONY: bench-gpu
bench-gpu:  ## the same on CUDA, and the throughput of 1-128 seeds batched, eager and as CUDA graphs (results/bench*_cuda*.csv)
	$(PY) scripts/bench.py --device cuda
	$(PY) scripts/bench.py --device cuda --seed-sweep 1,2,4,8,16,32,64,128
	$(PY) scripts/bench.py --device cuda --seed-sweep 1,2,4,8,16,32,64,128 --cuda-graph

OFFICIAL_DIR ?= ../shared/official/fixed-720d244

.PHONY: official
official:  ## run the authors' official code behind our runs into results/official/<commit>/ (make official FIGS="fig6 fig2")
	$(PY) scripts/official.py $(or $(FIGS),all) --official-dir $(OFFICIAL_DIR) --jobs $(or $(JOBS),1) --threads $(or $(THREADS),1)

official-%:  ## one figure's official runs, e.g. make official-fig2 (OFFICIAL_DIR=... for the release snapshot)
	$(PY) scripts/official.py $* --official-dir $(OFFICIAL_DIR) --jobs $(or $(JOBS),1) --threads $(or $(THREADS),1)

.PHONY: study-interventions
study-interventions:  ## seven grokking interventions, each tuned on 2 seeds, reported on 5 fresh ones (resumable; docs/study_interventions.md)
	OMP_NUM_THREADS=1 $(PY) scripts/study.py study_interventions $(STUDY)

.PHONY: study-baselines
study-baselines:  ## ⊥AdamW and StableMax vs a tuned AdamW weight decay, ≥ 5 seeds (resumable; docs/study_baselines.md)
	$(PY) scripts/study_baselines.py run $(STUDY)
	$(PY) scripts/study_baselines.py extend
	$(PY) scripts/study_baselines.py report
