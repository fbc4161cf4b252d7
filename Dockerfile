# cryptoetl image: one image for both roles
#   1. the Airflow image of the official Helm chart (images.airflow in helm-values.yaml):
#      scheduler (LocalExecutor), DAG processor, triggerer, API server, migration job;
#   2. the task pods that KubernetesPodOperator starts in namespace `cryptoetl`:
#      `python -m cryptoetl run STEP --interval START/END`.
#
# Build and push with an immutable tag; the same tag goes into helm-values.yaml
# (images.airflow.tag and CRYPTOETL_IMAGE). Never `:latest` (config.py refuses it):
#   docker build -t ghcr.io/cryptoetl/cryptoetl:0.1.0 .
#
# The base is pinned to the Airflow version that requirements.txt pins (apache-airflow==3.3.2)
# and to the Python that requirements.txt was resolved for (3.11); tests/test_deploy_manifests.py
# checks that the three agree. For fully reproducible builds, also pin the digest:
#   FROM apache/airflow:3.3.2-python3.11@sha256:<digest>
# The full (not `slim-`) image is used on purpose: it carries the Postgres driver the chart's
# metadata DB connection may need, which requirements.txt (MySQL only) does not.
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
