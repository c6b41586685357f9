# ioc-ingest service image: `ioc migrate` runs first (compose), then `ioc run`.

# The console's chart library (uPlot), from the npm registry at the version the lock pins.
FROM node:20-slim AS console
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    IOC_API_HOST=0.0.0.0 IOC_API_PORT=8000

WORKDIR /app
COPY pyproject.toml README.md ./
COPY ioc ./ioc
COPY migrations ./migrations
COPY config ./config
COPY --from=console /build/node_modules/uplot/dist/uPlot.iife.min.js \
     /build/node_modules/uplot/dist/uPlot.min.css ./ioc/static/vendor/
# Editable, so the package finds migrations/ and config/ beside it in /app.
RUN pip install --no-cache-dir -e . && useradd --system --uid 10001 ioc
USER ioc

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=6 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz').status != 200)"
CMD ["ioc", "run"]
