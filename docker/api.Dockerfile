# The API: no model libraries (torch, vLLM) in this image.
#   docker build -f docker/api.Dockerfile -t findap-api .
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /srv/findap
COPY pyproject.toml constraints.txt README.md alembic.ini ./
COPY app app
COPY workers workers
COPY training training
COPY migrations migrations
RUN pip install -c constraints.txt .
RUN useradd --create-home findap
USER findap
EXPOSE 8000
# DATABASE_URL and REDIS_URL come from the environment; migrate, then serve.
CMD ["sh", "-c", "findap migrate && findap serve --host 0.0.0.0 --port 8000"]
