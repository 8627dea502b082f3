#!/usr/bin/env bash
# Builds what a release publishes, for this Linux machine's platform, into
# dist/ (or --out DIR), without publishing anything:
#
#   baton-<version>-<target>.tar.gz   the binary, its man page, shell
#                                     completions, README and licences
#   baton_conductor-<version>-py3-none-manylinux_<glibc>_<arch>.whl
#                                     a Python wheel carrying the binary (as
#                                     maturin's `bin` bindings make them):
#                                     `pipx install baton-conductor` puts
#                                     `baton` on PATH
#   baton-conductor-<version>.tgz     an npm package with the binary, for
#                                     this OS and CPU: `npm install -g`
#   SHA256SUMS                        their checksums
#
#   scripts/dist.sh                   # builds the release binary first
#   scripts/dist.sh --binary PATH     # packs a binary built already
#   scripts/dist.sh --out DIR
#
# Needs python3 (the wheel), node and npm (the npm package), tar, sha256sum,
# and strip (binutils; without it the binary ships with its symbols).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out="$here/dist"
binary=""
while [ $# -gt 0 ]; do
  case "$1" in
    --binary|--out)
      [ $# -ge 2 ] || { echo "dist.sh: $1 needs a value (see --help)" >&2; exit 2; }
      if [ "$1" = --binary ]; then binary=$2; else out=$2; fi
      shift 2 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "dist.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ "$(uname -s)" != Linux ]; then
  echo "dist.sh packs Linux binaries (manylinux wheels, linux npm packages); this is $(uname -s)" >&2
  exit 1
fi
for tool in python3 node npm tar sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || { echo "dist.sh needs $tool" >&2; exit 1; }
done
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ -z "$binary" ]; then
  echo "building the release binary (cargo build --release --locked -p baton-cli)" >&2
  # Paths in the binary name no builder's home.
  export RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo --remap-path-prefix=$here=/baton"
  # Where cargo put it, as cargo says (a target directory may be configured).
  binary=$(cargo build --release --locked -p baton-cli --bin baton \
    --manifest-path "$here/Cargo.toml" --message-format=json-render-diagnostics |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
fi
[ -x "$binary" ] || { echo "dist.sh: no executable at ${binary:-(none)}" >&2; exit 1; }
stage=$(mktemp -d "${TMPDIR:-/tmp}/baton-dist.XXXXXX")
trap 'rm -rf "$stage"' EXIT
# What ships is the binary without its symbols (a third of its size).
if command -v strip >/dev/null 2>&1; then
  strip -o "$stage/baton" "$binary"
else
  echo "dist.sh: no strip on PATH (binutils); the binary ships with its symbols" >&2
  cp "$binary" "$stage/baton"
fi
chmod 755 "$stage/baton"
binary="$stage/baton"
version=$("$binary" --version | awk '{print $2}')
target=$( (rustc -vV 2>/dev/null || true) | sed -n 's/^host: //p')
if [ -z "$target" ]; then
  target="$(uname -m)-unknown-linux-gnu"
  echo "dist.sh: no rustc to say the target; naming it $target" >&2
fi

# The archive, the same bytes for the same binary (no builder's names or times).
name="baton-$version-$target"
dir="$stage/$name"
mkdir -p "$dir/completions"
cp "$binary" "$dir/baton"
"$binary" man > "$dir/baton.1"
"$binary" completions bash > "$dir/completions/baton.bash"
"$binary" completions zsh > "$dir/completions/_baton"
"$binary" completions fish > "$dir/completions/baton.fish"
cp "$here/README.md" "$here/LICENSE-MIT" "$here/LICENSE-APACHE" "$dir/"
chmod -R u=rwX,go=rX "$dir"
tar -C "$stage" --owner=0 --group=0 --numeric-owner --sort=name \
  --mtime="@${SOURCE_DATE_EPOCH:-1767225600}" -czf "$out/$name.tar.gz" "$name"
echo "wrote $out/$name.tar.gz" >&2

# The wheel: the binary under <name>.data/scripts, which pip installs into
# the environment's bin; tagged for the newest glibc symbol the binary needs.
python3 - "$binary" "$version" "$out" "$here" <<'PY'
import base64, hashlib, platform, re, shutil, subprocess, sys, zipfile
binary, version, out, here = sys.argv[1:5]
# Python's spelling of a pre-release: 0.2.0-rc.1 is 0.2.0rc1.
pep440 = re.sub(r"-(alpha|beta|rc)\.?(\d+)$", lambda m: {"alpha": "a", "beta": "b", "rc": "rc"}[m[1]] + m[2], version)
if not re.fullmatch(r"\d+(\.\d+)*((a|b|rc)\d+)?", pep440):
    sys.exit(f"dist.sh: version {version} has no Python spelling (PEP 440)")
data = open(binary, "rb").read()
if shutil.which("readelf"):
    symbols = subprocess.run(["readelf", "-V", binary], capture_output=True, check=True).stdout
else:
    symbols = data
needs = [(int(a), int(b)) for a, b in re.findall(rb"GLIBC_(\d+)\.(\d+)", symbols)]
if not needs:
    sys.exit("dist.sh: the binary names no glibc version (not a glibc build?): no manylinux wheel for it")
major, minor = max(needs)
plat = f"manylinux_{major}_{minor}_{platform.machine()}"
dist = "baton_conductor"
info = f"{dist}-{pep440}.dist-info"
wheel = f"{out}/{dist}-{pep440}-py3-none-{plat}.whl"
readme = open(f"{here}/README.md").read()
files = {
    f"{dist}-{pep440}.data/scripts/baton": (data, 0o755),
    f"{info}/METADATA": ((
        "Metadata-Version: 2.1\n"
        "Name: baton-conductor\n"
        f"Version: {pep440}\n"
        "Summary: Run a team of AI coding agents on one repository.\n"
        "License: MIT OR Apache-2.0\n"
        "Requires-Python: >=3.7\n"
        "Description-Content-Type: text/markdown\n\n" + readme
    ).encode(), 0o644),
    f"{info}/WHEEL": ((
        "Wheel-Version: 1.0\n"
        "Generator: baton scripts/dist.sh\n"
        "Root-Is-Purelib: false\n"
        f"Tag: py3-none-{plat}\n"
    ).encode(), 0o644),
    f"{info}/licenses/LICENSE-MIT": (open(f"{here}/LICENSE-MIT", "rb").read(), 0o644),
    f"{info}/licenses/LICENSE-APACHE": (open(f"{here}/LICENSE-APACHE", "rb").read(), 0o644),
}
def digest(b):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b"=").decode()
record = "".join(f"{p},{digest(b)},{len(b)}\n" for p, (b, _) in files.items()) + f"{info}/RECORD,,\n"
files[f"{info}/RECORD"] = (record.encode(), 0o644)
with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
    for path, (body, mode) in files.items():
        entry = zipfile.ZipInfo(path, date_time=(2026, 1, 1, 0, 0, 0))
        entry.external_attr = (0o100000 | mode) << 16
        entry.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(entry, body)
print(f"wrote {wheel}", file=sys.stderr)
PY

# The npm package: the binary as its `bin`, for this OS and CPU only.
pkg="$stage/npm"
mkdir -p "$pkg/bin"
cp "$binary" "$pkg/bin/baton"
cp "$here/README.md" "$here/LICENSE-MIT" "$here/LICENSE-APACHE" "$pkg/"
node_os=$(node -p 'process.platform')
node_cpu=$(node -p 'process.arch')
cat > "$pkg/package.json" <<JSON
{
  "name": "baton-conductor",
  "version": "$version",
  "description": "Run a team of AI coding agents on one repository ($node_os-$node_cpu build).",
  "license": "MIT OR Apache-2.0",
  "bin": { "baton": "bin/baton" },
  "os": ["$node_os"],
  "cpu": ["$node_cpu"],
  "files": ["bin/baton", "README.md", "LICENSE-MIT", "LICENSE-APACHE"]
}
JSON
(cd "$pkg" && npm pack --offline --no-update-notifier --pack-destination "$out" >/dev/null)
echo "wrote $out/baton-conductor-$version.tgz" >&2

(cd "$out" && sha256sum "$name.tar.gz" baton_conductor-*-py3-none-*.whl "baton-conductor-$version.tgz" > SHA256SUMS)
echo "wrote $out/SHA256SUMS" >&2
