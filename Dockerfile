# One image for every ACBA process on Azure: `acba web`, `acba worker` and the
# operator's commands. It carries what file-level recovery needs (libguestfs,
# qemu's HTTP block driver and a kernel for the appliance), installed by the
# same script a developer's machine runs. See docs/deployment.md.
FROM node:20-bookworm-slim

WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts/setup.sh scripts/setup.sh
RUN sh scripts/setup.sh && rm -rf /var/lib/apt/lists/*
COPY . .

ENV NODE_ENV=production \
    PORT=3978 \
    DATA_DIR=/var/lib/acba
EXPOSE 3978
ENTRYPOINT ["node", "bin/acba.js"]
CMD ["web"]
