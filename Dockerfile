# The training image: Vertex AI custom jobs run `estate train|score|monitor …` in it.
# Cloud Build builds and pushes it (cloudbuild.yaml, step `image`); `estate submit`,
# the retrain function and the scheduled jobs use it. tests/infra/test_image.py checks that this
# file, pyproject.toml and the CustomJob spec agree, and runs the job's command line in a
# fresh venv holding exactly what the install line below installs.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Jobs run as this user, never as root.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin estate

WORKDIR /app
# Only what the package needs (.dockerignore keeps the rest out). The data-set configs sit
# at configs/ under the working directory: jobs pass --config by that path.
COPY pyproject.toml README.md ./
COPY estate/ estate/
COPY configs/ configs/
# The local project, not a PyPI name: its dependency ranges are pyproject.toml's.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[train,gcs]"

USER 10001
ENTRYPOINT ["estate"]
CMD ["--help"]
