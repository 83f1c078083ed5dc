# naic-hub's two commands (see README.md):
#   make up     set up, then run the hub on its embedded defaults at http://127.0.0.1:8000
#   make test   set up (as root: system packages and the Slurm test cluster), lint, run every test
# Set-up is idempotent: stamps in .venv/ and node_modules/ skip what is already done.

SHELL := /bin/bash
PYTHON ?= /usr/bin/python3
VENV := .venv
BIN := $(VENV)/bin
UP_ARGS ?=
# The JupyterLab notices extension: its TypeScript source, and the file its build writes last.
NOTICES := src/naic/extensions/notices
NOTICES_BUILT := src/naic/extensions/labextension/naic-hub-notices/package.json

.PHONY: setup setup-test up test test-unit lint system-packages browser-packages postgres-packages

setup: system-packages $(BIN)/.installed node_modules/.installed $(NOTICES_BUILT)

setup-test: setup browser-packages postgres-packages $(BIN)/.installed-test

up: setup
	$(BIN)/naic up $(UP_ARGS)

test: setup-test lint
	$(BIN)/pytest

test-unit: setup-test
	$(BIN)/pytest tests/unit -q

lint: setup-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Installs what a fresh Debian lacks (checked by command: node may come with its own npm);
# as a normal user it names the packages instead. rclone (naic-data's copies in sessions on
# this machine) is installed as root, and only named to a normal user: the hub runs without.
system-packages:
	@missing=""; \
	$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	extra=""; command -v rclone >/dev/null || extra=" rclone"; \
	if [ -n "$$missing$$extra" ] && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing$$extra; \
	elif [ -n "$$missing" ]; then \
	  echo "naic-hub needs these Debian packages:$$missing"; \
	  echo "install them with: sudo apt-get install$$missing$$extra"; exit 1; \
	elif [ -n "$$extra" ]; then \
	  echo "note: naic-data in sessions on this machine needs rclone: sudo apt-get install rclone"; \
	fi

# The browser tests drive Debian's Chromium through Playwright (`playwright install`
# downloads a browser, which cannot work here). As a normal user it names the package and
# goes on: the unit tests need no browser, and the browser tests fail loudly without one.
browser-packages:
	@if ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else \
	    echo "the browser tests need the Debian package chromium;"; \
	    echo "install it with: sudo apt-get install chromium"; \
	  fi; \
	fi

# The ledger's integration tests start a throw-away PostgreSQL server from Debian's binaries
# (tests/postgres.py); they never touch a cluster the machine itself runs, and installing the
# package creates none (create_main_cluster = false). As a normal user it names the package
# and goes on, as for Chromium.
postgres-packages:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    if [ ! -e /etc/postgresql-common/createcluster.conf ]; then \
	      mkdir -p /etc/postgresql-common; \
	      echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf; \
	    fi; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	      -o Dpkg::Options::=--force-confold postgresql; \
	  else \
	    echo "the ledger's PostgreSQL tests need the Debian package postgresql;"; \
	    echo "install it with: sudo apt-get install postgresql"; \
	  fi; \
	fi

# Debian's Python, not a private one: as root, sessions run under user accounts that must
# be able to read this environment's interpreter.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[hub,session]'
	touch $@

$(BIN)/.installed-test: $(BIN)/.installed
	$(BIN)/pip install -q -e '.[hub,session,test]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The JupyterLab notices extension: TypeScript in $(NOTICES), built by JupyterLab's builder
# (`jupyter labextension build`, which needs the venv's jupyter) into the committed, prebuilt
# extensions/labextension/naic-hub-notices (src/naic/extensions/labextension/README.md).
$(NOTICES_BUILT): $(NOTICES)/package.json $(NOTICES)/package-lock.json $(NOTICES)/tsconfig.json \
		$(NOTICES)/rspack.config.js $(wildcard $(NOTICES)/src/*.ts) | $(BIN)/.installed
	cd $(NOTICES) && npm ci --no-audit --no-fund --loglevel=error
	cd $(NOTICES) && PATH=$(CURDIR)/$(BIN):$$PATH npm run build:prod
	touch $@
