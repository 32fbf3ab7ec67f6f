#!/usr/bin/env bash
# Install the sources of prunekit's built-in corpora (java, cpp, javascript, text); idempotent.
#   bash scripts/install_corpora.sh                 # all of them
#   bash scripts/install_corpora.sh java text       # some
# Needs: apt-get (root, for `apt-get update` / `apt-get install`) and npm. The python corpus is the
# interpreter's own standard library and needs nothing. Files go under $PRUNEKIT_HOME/corpora
# (default ~/.cache/prunekit/corpora); prunekit prepares its caches from them on first use.
# Debian packages are fetched with `apt-get download` and unpacked into that folder rather than
# installed, so no JDK or R is pulled in (`apt-get install openjdk-17-source` / r-cran-janeaustenr
# work too: prunekit looks in their installed locations first).
set -euo pipefail

HOME_DIR="${PRUNEKIT_HOME:-$HOME/.cache/prunekit}/corpora"
DOWNLOADS="$HOME_DIR/downloads"
NPM_PACKAGES=(lodash@4 express@4 eslint@8 acorn@8)  # keep in sync with corpus_sources.NPM_PACKAGES
WANT=("$@")
[ ${#WANT[@]} -eq 0 ] && WANT=(java cpp javascript text)

say() { echo "[install_corpora] $*"; }
apt_ready=0
apt_update() {
  if [ "$apt_ready" = 0 ]; then
    apt-get update -qq
    apt_ready=1
  fi
}

# Unpack one file of a Debian package into $2 without installing the package (or its depends).
deb_extract() {  # deb_extract PACKAGE PATH_IN_PACKAGE TARGET
  local pkg=$1 member=$2 target=$3 tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  apt_update
  (cd "$tmp" && apt-get download -q "$pkg")
  mkdir -p "$(dirname "$target")"
  dpkg-deb --fsys-tarfile "$tmp"/"$pkg"_*.deb | tar -xO ".$member" > "$target.partial"
  mv "$target.partial" "$target"
}

for name in "${WANT[@]}"; do
  case "$name" in
    java)
      found=0
      for z in /usr/lib/jvm/*17*/lib/src.zip "$DOWNLOADS/openjdk-17-src.zip"; do
        [ -s "$z" ] && found=1  # -s follows links: the JDK's src.zip link dangles without -source
      done
      if [ "$found" = 1 ]; then
        say "java: OpenJDK 17 src.zip present"
      else
        say "java: fetching openjdk-17-source (~47 MB)"
        deb_extract openjdk-17-source /usr/lib/jvm/openjdk-17/lib/src.zip "$DOWNLOADS/openjdk-17-src.zip"
      fi
      ;;
    cpp)
      if ls -d /usr/include/c++/[0-9]* >/dev/null 2>&1; then
        say "cpp: libstdc++ headers present ($(ls -d /usr/include/c++/[0-9]* | tail -1))"
      else
        say "cpp: installing libstdc++-12-dev"
        apt_update
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libstdc++-12-dev
      fi
      ;;
    javascript)
      missing=0
      for spec in "${NPM_PACKAGES[@]}"; do
        [ -f "$HOME_DIR/npm/node_modules/${spec%@*}/package.json" ] || missing=1
      done
      if [ "$missing" = 0 ]; then
        say "javascript: npm packages present"
      else
        command -v npm >/dev/null || { apt_update; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm; }
        say "javascript: npm install ${NPM_PACKAGES[*]}"
        mkdir -p "$HOME_DIR/npm"
        npm install --prefix "$HOME_DIR/npm" --no-audit --no-fund --ignore-scripts --loglevel=error \
          "${NPM_PACKAGES[@]}"
      fi
      ;;
    text)
      if [ -s /usr/lib/R/site-library/janeaustenr/data/Rdata.rdb ] || [ -s "$DOWNLOADS/janeaustenr/Rdata.rdb" ]; then
        say "text: janeaustenr data present"
      else
        say "text: fetching r-cran-janeaustenr (~1.6 MB)"
        deb_extract r-cran-janeaustenr /usr/lib/R/site-library/janeaustenr/data/Rdata.rdb \
          "$DOWNLOADS/janeaustenr/Rdata.rdb"
      fi
      ;;
    python)
      say "python: the interpreter's standard library, nothing to install"
      ;;
    *)
      echo "install_corpora.sh: unknown corpus '$name'; choose from java cpp javascript text" >&2
      exit 2
      ;;
  esac
done
