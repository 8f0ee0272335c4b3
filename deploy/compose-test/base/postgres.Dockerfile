# Stand-in for the official postgres image: Debian 12's PostgreSQL 15 with a small entrypoint that does
# what docker-compose.yml relies on (POSTGRES_USER/POSTGRES_PASSWORD, /docker-entrypoint-initdb.d/*.sql
# on an empty data directory, data in /var/lib/postgresql/data, pg_isready on PATH).
ARG DEBIAN_BASE=export-engine-local/debian:bookworm
FROM ${DEBIAN_BASE}
# No cluster from the package's postinst: the entrypoint makes its own in PGDATA.
# hadolint ignore=DL3008
RUN mkdir -p /etc/postgresql-common/createcluster.d \
    && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/no-main.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql /docker-entrypoint-initdb.d \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
    && chmod 700 /var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PGDATA=/var/lib/postgresql/data PATH=/usr/lib/postgresql/15/bin:$PATH
# hadolint ignore=DL3066
USER postgres
# SIGINT is PostgreSQL's fast shutdown (SIGTERM waits for every client to disconnect), as the official image.
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
