# sparkgd: `make run` trains on built-in data with spark-submit; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export SPARK_LOCAL_IP ?= 127.0.0.1
export PYSPARK_PYTHON := $(abspath $(PY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))

.PHONY: setup run test test-minors lint bench dist clean check-java

check-java:
	@command -v java >/dev/null 2>&1 || { echo "error: Java 17+ is required by Spark and java is not on PATH; install it (Debian: apt-get install openjdk-17-jre-headless) or set JAVA_HOME"; exit 1; }
	@v=$$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1); \
	 if [ -z "$$v" ] || [ "$$v" -lt 17 ]; then echo "error: Java 17+ is required by Spark, found Java $${v:-unknown}; install openjdk-17 and put it first on PATH (or set JAVA_HOME)"; exit 1; fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

# Every other pyspark minor the package declares (pyproject.toml), for the tests that touch Spark's
# behaviour and internals: the MLlib parity tests, the engine, resident tasks, engine/_spark.py.
MINORS := 3.5 4.0 4.1 4.2
MINOR_TESTS := tests/spark/test_mllib_parity.py tests/spark/test_engine.py tests/spark/test_resident.py \
	tests/spark/test_spark_internals.py
.venv-%/.installed: pyproject.toml
	$(PYTHON) -m venv .venv-$*
	.venv-$*/bin/python -m pip install -q --upgrade pip
	.venv-$*/bin/python -m pip install -q 'pyspark==$*.*' -e '.[dev]'
	touch $@

test-minors: $(foreach m,$(MINORS),.venv-$(m)/.installed) check-java
	@set -e; for m in $(MINORS); do \
		echo "== pyspark $$m: $$(.venv-$$m/bin/python -c 'import pyspark; print(pyspark.__version__)')"; \
		PYSPARK_PYTHON=$(CURDIR)/.venv-$$m/bin/python PYSPARK_DRIVER_PYTHON=$(CURDIR)/.venv-$$m/bin/python \
			.venv-$$m/bin/python -m pytest -q -p no:cacheprovider $(MINOR_TESTS); \
	done

run: setup check-java
	$(VENV)/bin/spark-submit --master 'local[2]' --properties-file conf/spark-defaults.conf \
		--driver-java-options "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Dlog4j2.configurationFile=$(abspath conf/log4j2.properties)" \
		jobs/train_linear.py --output output --overwrite $(ARGS)

test: setup check-java
	$(PY) -m ruff check sparkgd jobs tests $(wildcard benchmarks/*.py)
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check sparkgd jobs tests $(wildcard benchmarks/*.py)

bench: setup check-java
	$(PY) benchmarks/bench.py $(ARGS)

dist: setup
	rm -rf dist && mkdir -p dist
	$(PY) -m pip wheel -q --no-deps -w dist .
	cd $(CURDIR) && zip -qr dist/sparkgd.zip sparkgd -x '*__pycache__*'
	@ls -l dist

clean:
	rm -rf dist build *.egg-info .pytest_cache
