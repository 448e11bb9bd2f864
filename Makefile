# The two commands of the README:  `make serve`  and  `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
MODEL_TAG ?= tweet-lstm@champion
# The teachers whose P(positive) replaces Sentiment140's noisy labels for the default LSTM: the MiniLM fine-tuned on
# airline tweets (make serve trains it, in minutes) and the five-times larger MPNet (make train). The LSTM learns
# from whichever scores better on TweetEval val, never a test set (docs/training.md).
TEACHER ?= tweet-minilm@champion,tweet-mpnet@champion
LSTM_ARGS ?= --dataset airline+sentiment140 --teacher $(TEACHER)
# MPNet on airline tweets and the Sentiment140 tweets whose label the MiniLM confirms (docs/training.md).
MPNET_ARGS ?= --base mpnet --dataset airline+sentiment140:4000 --teacher tweet-minilm@champion --agreeing-only \
	--epochs 1 --batch-size 16
PORT ?= 3000
IMAGE ?= tweet-sentiment:dev

.PHONY: install apertium data serve test test-slow minilm train train-lstm train-lstm-phrases train-mpnet results drift image lock lint bench bench-smoke streamlit clean system-deps

$(VENV)/.installed: requirements.txt requirements-serve.txt requirements-runtimes.txt requirements-batch.txt \
		requirements-encoders.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m tweet_sentiment.training.encoders install
	touch $@

install: $(VENV)/.installed

# checkov, which checks deploy/kubernetes.yaml in the tests, in a venv of its own: it pins older versions of
# packages MLflow and BentoML need.
CHECKOV_VENV ?= .venv-checkov
$(CHECKOV_VENV)/bin/checkov:
	python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q checkov==3.3.30

## The datasets, fetched and verified where missing (TWEETS_DATA_DIR, default ../shared/data).
data: install
	$(PY) download_data.py

## Apertium, which translates French tweets (Debian's packages), where it is missing and apt runs without a password.
APERTIUM := apertium apertium-fr-es apertium-eng-spa
apertium:
	@apertium -l 2>/dev/null | grep -qw spa-eng || { \
		as_root=$$([ "$$(id -u)" = 0 ] || echo sudo -n); \
		($$as_root apt-get update -qq && $$as_root apt-get install -y -qq --no-install-recommends $(APERTIUM)) \
			>/dev/null 2>&1 || echo "note: without Apertium (apt-get install $(APERTIUM)), French tweets get the English answer, flagged"; }

## Serve the LSTM's champion (MLflow alias), training the LSTM first if there is none.
serve: data apertium
	@$(PY) -m train show $(MODEL_TAG) 2>/dev/null || $(MAKE) --no-print-directory train-lstm
	$(PY) -m bentoml serve service:TweetSentiment --port $(PORT) --arg model_tag=$(MODEL_TAG)

## The test suite, on tiny models. `make test-slow` adds the long checks.
test: install $(CHECKOV_VENV)/bin/checkov
	$(PY) -m ruff check .
	CHECKOV=$(CHECKOV_VENV)/bin/checkov $(PY) -m pytest

test-slow: install
	$(PY) -m pytest -m "slow or spark"

## The MiniLM teacher, where it has no champion yet.
minilm: data
	@$(PY) -m train show tweet-minilm@champion >/dev/null 2>&1 || $(PY) -m train transformer

## The LSTM distilled from the better teacher there is (make serve's: the MiniLM, unless MPNet was trained).
train-lstm: minilm
	$(PY) -m train lstm $(LSTM_ARGS)

## make train's and the published image's LSTM: it also learns the teacher's scores of phrases cut from its tweets.
## Measured with the MPNet teacher (docs/training.md); make serve leaves them out, for its time to a first answer.
train-lstm-phrases: minilm
	$(PY) -m train lstm $(LSTM_ARGS) --phrases

## The accurate family: MPNet fine-tuned on airline and Sentiment140 tweets.
train-mpnet: minilm
	$(PY) -m train transformer $(MPNET_ARGS)

## Train every family (both teachers first), then regenerate the README's results table and the model cards.
train: data
	$(PY) -m train transformer
	$(PY) -m train transformer $(MPNET_ARGS)
	$(MAKE) --no-print-directory train-lstm-phrases
	$(PY) -m train logreg
	$(PY) -m train.report

results: install
	$(PY) -m train.report

## Drift report of what the server answered (docs/lifecycle.md).
drift: install
	$(PY) drift_report.py

## The Bento of MODEL_TAG and its image IMAGE. BentoML copies the Bento to the temporary folder and
## refuses a Dockerfile template outside the current folder: containerize runs from there.
## The image is labelled with the registered version it packs and its MLflow run (docker image inspect).
image: install
	$(PY) -m bentoml build --arg model_tag=$(MODEL_TAG)
	labels="$$($(PY) -m train image-labels tweet-sentiment:latest)" && cd "$${TMPDIR:-/tmp}" && \
		$(abspath $(PY)) -m bentoml containerize tweet-sentiment:latest -t $(IMAGE) $$labels

## The locks the Bento and the image install from: every serving package, transitive ones included, at the
## versions requirements.txt pins where it pins them. Run after changing requirements-serve.txt or -runtimes.txt.
LOCK := $(VENV)/bin/uv pip compile --universal --python-version 3.11 --quiet
lock: install
	$(LOCK) requirements-serve.txt -c requirements.txt -o requirements-serve.lock
	$(LOCK) requirements-runtimes.txt -c requirements-serve.lock -c requirements.txt -o requirements-runtimes.lock

lint: install
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

bench: install
	$(PY) -m benchmarks.run

bench-smoke: install
	$(PY) -m benchmarks.run --smoke

streamlit: install
	$(VENV)/bin/streamlit run streamlit_app.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

## System packages some tests use (Debian): headless Chromium, Prometheus and Alertmanager, PostgreSQL, Docker,
## debootstrap, nginx, Java, Apertium.
system-deps:
	apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver prometheus \
		prometheus-alertmanager postgresql \
		docker.io debootstrap iptables nginx openjdk-17-jre-headless apertium apertium-fr-es apertium-eng-spa
