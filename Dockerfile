# syntax=docker/dockerfile:1
# Not built in CI (no Docker engine on the project's machines); test/container.e2e-spec.ts
# checks what it can: a production install (npm ci --omit=dev --omit=optional) plus dist/ starts and serves,
# and this file's HEALTHCHECK command answers against it.

# Build: every dependency, then the compiled server in dist/.
FROM node:26-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY nest-cli.json tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Runtime: production dependencies and dist/ only, as an unprivileged user.
FROM node:26-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The image's own unprivileged user (uid 1000); the app writes nothing unless SNAPSHOT_PATH
# points at a volume it may write to.
USER node
EXPOSE 3000
# node:26-slim has no curl; Node's fetch does the probe.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/health/live').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node itself, not npm: SIGTERM from `docker stop` reaches the primary, which drains the workers.
CMD ["node", "dist/main"]
