# The API (`findap serve`), migrations (`findap migrate`) and API keys (`findap keys`): no model
# libraries (torch, vLLM) in this image.
#   docker build -f docker/api.Dockerfile -t findap-api .
#   docker run --rm -e DATABASE_URL=... findap-api findap migrate
#   docker run -p 8000:8000 -e DATABASE_URL=... -e REDIS_URL=... findap-api
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/var/lib/findap
RUN useradd --create-home --uid 10001 findap \
    && mkdir -p /var/lib/findap/files /var/lib/findap/training /var/lib/findap/models \
    && chown -R findap:findap /var/lib/findap
WORKDIR /srv/findap
# Dependencies first, from pyproject.toml and constraints.txt alone, so a change to the code
# reuses this layer; then the code itself, without touching the dependencies.
COPY pyproject.toml constraints.txt README.md ./
RUN mkdir app workers training migrations && pip install -c constraints.txt . \
    && pip uninstall -y findap
COPY app app
COPY workers workers
COPY training training
COPY migrations migrations
RUN pip install --no-deps -c constraints.txt .
USER findap
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# DATABASE_URL and REDIS_URL come from the environment. Migrations are a separate step
# (`findap migrate`, the `migrate` service in compose.yaml), run once, not by every replica.
CMD ["findap", "serve", "--host", "0.0.0.0", "--port", "8000"]
