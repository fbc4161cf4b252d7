# cryptoetl image: one image for both roles
#   1. the Airflow image of the official Helm chart (images.airflow in helm-values.yaml):
#      scheduler (LocalExecutor), DAG processor, triggerer, API server, migration job;
#   2. the task pods that KubernetesPodOperator starts in namespace `cryptoetl`:
#      `python -m cryptoetl run STEP --interval START/END`.
#
# Build and push with an immutable tag: the release version, `__version__` in
# include/cryptoetl/__init__.py (the one place it is set; docs/RELEASING.md). The same tag is in
# helm-values.yaml (images.airflow.tag and CRYPTOETL_IMAGE), checked by
# tests/test_release_version.py. Never `:latest` (config.py refuses it):
#   VERSION=$(PYTHONPATH=include python -c 'import cryptoetl; print(cryptoetl.__version__)')
#   docker build -t ghcr.io/cryptoetl/cryptoetl:$VERSION .
#
# The news_sentiment pods run a second image, the target `sentiment` below: the image above plus
# torch, transformers and the two models baked in (see there and docs/SENTIMENT.md). torch and
# transformers (~1 GB installed) are in that image only: the Airflow components and every other
# task pod run the project image, which installs requirements.txt and nothing of them.
#
# The base is pinned to the Airflow version that requirements.txt pins (apache-airflow==3.3.2)
# and to the Python that requirements.txt was resolved for (3.11); tests/test_deploy_manifests.py
# checks that the three agree. For fully reproducible builds, also pin the digest:
#   FROM apache/airflow:3.3.2-python3.11@sha256:<digest>
# The full (not `slim-`) image is used on purpose: it carries the Postgres driver the chart's
# metadata DB connection may need, which requirements.txt (MySQL only) does not.
# ---------------------------------------------------------------------------------------------
# Target `sentiment`: the image of the news_sentiment pods = the project image + torch and
# transformers (requirements-sentiment.txt: requirements.txt plus the packages only they need) +
# both models.
#
#   docker build -t ghcr.io/cryptoetl/cryptoetl:$VERSION .    # first: the project image (VERSION: see the top)
#   docker build --target sentiment -t ghcr.io/cryptoetl/cryptoetl-sentiment:$VERSION \
#       --build-arg CRYPTOETL_VERSION=$VERSION \
#       --build-arg CRYPTOBERT_REVISION=<40-hex commit of ElKulako/cryptobert> \
#       --build-arg FINBERT_REVISION=<40-hex commit of ProsusAI/finbert> .
#
# Why baked in: the pods have no route to the Hugging Face Hub, and nothing may download at run time
# (a model fetched at run time could change under a backfill). The build machine downloads them once.
# Why commit hashes: a branch like `main` moves; a commit is immutable, and it is the revision the
# step stores with every score (crypto_sentiment_data.model_revision), so the image tag pins the
# scores. Look the commits up on the Hub ("Files and versions" -> History) or with
# `hf api`/`huggingface_hub.model_info(repo).sha`; the build refuses anything but 40 hex digits.
#
# The files go into a Hugging Face cache layout (/opt/models/hub/models--<org>--<name>/snapshots/
# <commit>/); CRYPTOETL_*_PATH point at those snapshot directories, so the step stores the commit as
# the revision. HF_HUB_OFFLINE=1: the libraries never try the network.
#
# FROM names the project image by the release tag, CRYPTOETL_VERSION (= the tag of CRYPTOETL_IMAGE):
# the models layer is added on top of exactly the image the other pods run. A global ARG (declared
# before the first FROM, so FROM can use it); its default is kept equal to cryptoetl.__version__ by
# tests/test_release_version.py, and the build command above passes it explicitly. BuildKit
# builds only the stages a target needs, so the plain `docker build .` above neither needs this
# image nor the build arguments (the legacy non-BuildKit builder would build every stage). Only the
# config, tokenizer and safetensors/PyTorch weight files are downloaded (no TF/Flax/ONNX copies):
# ~0.9 GB for the two BERT-base models (more if a repository holds both weight formats).
ARG CRYPTOETL_VERSION=0.2.0
FROM ghcr.io/cryptoetl/cryptoetl:${CRYPTOETL_VERSION} AS sentiment
ARG CRYPTOBERT_REVISION
ARG FINBERT_REVISION
# torch==2.13.0 must resolve to the CPU build: on PyPI alone that version is the CUDA build, which
# pulls several GB of nvidia-* wheels. With the PyTorch CPU index added, pip picks 2.13.0+cpu (a
# local version of the same release, preferred over the plain one) and no CUDA package. The
# project image's pins (requirements.txt, included by requirements-sentiment.txt) are already
# installed and stay as they are; this adds torch, transformers and huggingface_hub (whose `hf`
# command downloads the models below).
COPY --chown=airflow:0 requirements.txt requirements-sentiment.txt /tmp/cryptoetl-sentiment/
RUN pip install --no-cache-dir -r /tmp/cryptoetl-sentiment/requirements-sentiment.txt \
        --extra-index-url https://download.pytorch.org/whl/cpu \
    && rm -rf /tmp/cryptoetl-sentiment
USER root
RUN mkdir -p /opt/models/hub && chown -R airflow:0 /opt/models
USER airflow
RUN set -eu; \
    for rev in "$CRYPTOBERT_REVISION" "$FINBERT_REVISION"; do \
      echo "$rev" | grep -Eq '^[0-9a-f]{40}$' || { echo "pass --build-arg CRYPTOBERT_REVISION=/FINBERT_REVISION= as 40-hex commit hashes (got '$rev')" >&2; exit 1; }; \
    done; \
    for spec in "ElKulako/cryptobert@$CRYPTOBERT_REVISION" "ProsusAI/finbert@$FINBERT_REVISION"; do \
      hf download "${spec%@*}" --revision "${spec#*@}" --cache-dir /opt/models/hub \
        --include config.json --include "*.safetensors" --include "*.safetensors.index.json" \
        --include "pytorch_model*.bin" --include pytorch_model.bin.index.json --include tokenizer.json \
        --include tokenizer_config.json --include special_tokens_map.json --include added_tokens.json \
        --include vocab.txt --include vocab.json --include merges.txt --include bpe.codes; \
    done
ENV HF_HUB_CACHE=/opt/models/hub \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    CRYPTOETL_CRYPTOBERT_PATH=/opt/models/hub/models--ElKulako--cryptobert/snapshots/${CRYPTOBERT_REVISION} \
    CRYPTOETL_FINBERT_PATH=/opt/models/hub/models--ProsusAI--finbert/snapshots/${FINBERT_REVISION}
# Fail the build, not the first pod, if a model does not load offline or has an unknown label set;
# prints the revisions the step will store.
RUN python -c "from cryptoetl.config import Settings; from cryptoetl.sentiment import model as m; s = Settings.from_env().sentiment; [print(k, m.load(m.resolve(m.ModelSpec.from_settings(s, k)), 1).revision) for k in ('cryptobert', 'finbert')]"

# ---------------------------------------------------------------------------------------------
# The project image (default target): Airflow + cryptoetl + DAGs. Keep it the last stage.
FROM apache/airflow:3.3.2-python3.11

# mysqlclient (in requirements.txt) compiles against the MySQL/MariaDB client headers.
USER root
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        default-libmysqlclient-dev pkg-config build-essential \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
USER airflow

# Pinned runtime dependencies first: this layer is rebuilt only when requirements.txt changes.
# apache-airflow is pinned there to the base image's version, so pip keeps Airflow as it is.
# requirements.txt only: Airflow, its providers (fab: the auth manager of helm-values.yaml), the
# sources and the warehouse. No torch or transformers: those are the sentiment stage's
# (tests/test_images.py checks both).
COPY --chown=airflow:0 requirements.txt /tmp/cryptoetl/requirements.txt
RUN pip install --no-cache-dir -r /tmp/cryptoetl/requirements.txt

# The cryptoetl package itself; --no-deps: requirements.txt is the only source of versions.
COPY --chown=airflow:0 pyproject.toml /tmp/cryptoetl/pyproject.toml
COPY --chown=airflow:0 include/ /tmp/cryptoetl/include/
RUN pip install --no-cache-dir --no-deps /tmp/cryptoetl \
    && rm -rf /tmp/cryptoetl

# DAGs, plugins and include/ (pools.json: imported by the chart's migration job, see
# helm-values.yaml). In the cluster git-sync mounts the DAGs over /opt/airflow/dags; the
# copies baked in here keep the image self-contained (local runs, `airflow dags test`).
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 include/ /opt/airflow/include/
