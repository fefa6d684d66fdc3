# Switchyard container image. Node 24 runs the TypeScript sources directly (type stripping):
# no build stage, the image is the sources plus production dependencies.
#   docker build -t switchyard .
#   docker run --init -p 8080:8080 -v "$PWD/config.yaml:/etc/switchyard/config.yaml:ro" switchyard
# The config must listen on 0.0.0.0 (server.listen.host) to be reachable from outside the
# container; admin_listen defaults to 127.0.0.1:9090, which the HEALTHCHECK below uses.
FROM node:24-slim

ENV NODE_ENV=production
WORKDIR /app

# Dependencies first, so the layer is cached while only sources change.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY bin/ ./bin/
COPY gateway/ ./gateway/
COPY policies/ ./policies/
COPY config/ ./config/

# Writable place for state (regenerated keys) when there is no Redis: point `state.file` at
# /var/lib/switchyard/state.json, since the default (next to the config file) is usually a
# read-only mount.
RUN mkdir -p /var/lib/switchyard && chown node:node /var/lib/switchyard

USER node
EXPOSE 8080 9090

# No curl in slim images: ask the admin listener with Node's fetch. Override the URL when the
# config moves admin_listen.
ENV SWITCHYARD_HEALTHCHECK_URL=http://127.0.0.1:9090/healthz
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.SWITCHYARD_HEALTHCHECK_URL,{signal:AbortSignal.timeout(3000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

ENTRYPOINT ["node", "bin/switchyard.mjs"]
CMD ["serve", "--config", "/etc/switchyard/config.yaml"]
