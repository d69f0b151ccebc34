# Sourced by scripts/test: the end-to-end suite (tests/e2e) drives Debian's Chromium and starts a
# PostgreSQL server of its own, so both are installed here when missing and this user may install
# Debian packages. Anyone else is told what to install, or to leave the suite out with -m "not e2e".

have_postgres_server() {
  command -v initdb >/dev/null || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

missing_packages=()
command -v chromium >/dev/null || missing_packages+=(chromium)
have_postgres_server || missing_packages+=(postgresql)

if [ "${#missing_packages[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing ${missing_packages[*]} for the end-to-end tests" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    # Only the server's binaries are wanted: the tests make a throwaway cluster, not Debian's "main".
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/no-main-cluster.conf
    apt-get install -y -qq "${missing_packages[@]}" >/dev/null
  else
    echo "The end-to-end tests need Debian's ${missing_packages[*]}:" \
      "sudo apt-get install ${missing_packages[*]}, or run scripts/test -m 'not e2e'" >&2
  fi
fi
