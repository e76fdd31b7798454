# Thin aliases for dev.py, which needs only Python 3.11 and pip.
.PHONY: demo test install bench clean
demo:
	python3 dev.py demo
test:
	python3 dev.py test
install:
	python3 dev.py install
bench: install
	.venv/bin/python benchmarks/run_overhead.py
clean:
	rm -rf runs mlartifacts mlflow.db logs
