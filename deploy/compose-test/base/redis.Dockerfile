# Stand-in for the official redis image: Debian 12's Redis 7.0 (redis-server, redis-cli), data in /data.
# Without a config file Redis starts in protected mode and refuses the other containers; the official
# image turns protected mode off in its build, this one in its entrypoint.
ARG DEBIAN_BASE=export-engine-local/debian:bookworm
FROM ${DEBIAN_BASE}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server redis-tools \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
# hadolint ignore=DL3066
USER redis
EXPOSE 6379
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["redis-server"]
