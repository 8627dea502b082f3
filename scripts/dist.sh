#!/usr/bin/env bash
# Builds what a release publishes, for this machine's platform, into dist/
# (or --out DIR), without publishing anything:
#
#   baton-<version>-<target>.tar.gz   the binary, its man page, shell
#                                     completions, README and licences
#   baton_cli-<version>-py3-none-<platform>.whl
#                                     a Python wheel carrying the binary (as
#                                     maturin's `bin` bindings make them):
#                                     `pipx install` / `uv tool install` /
#                                     `pip install` put `baton` on PATH
#   baton-cli-<version>.tgz           an npm package with the binary:
#                                     `npm install -g` puts `baton` on PATH
#   SHA256SUMS                        their checksums
#
#   scripts/dist.sh                   # builds the release binary first
#   scripts/dist.sh --binary PATH     # packs a binary built already
#   scripts/dist.sh --out DIR
#
# Needs python3 (the wheel) and npm (the npm package); each package is
# checked by installing it (tests/test_dist.rs in baton-cli does so for CI).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out="$here/dist"
binary=""
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "dist.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for tool in python3 npm tar; do
  command -v "$tool" >/dev/null 2>&1 || { echo "dist.sh needs $tool" >&2; exit 1; }
done

if [ -z "$binary" ]; then
  echo "building the release binary (cargo build --release --locked -p baton-cli)" >&2
  cargo build --release --locked -q -p baton-cli --manifest-path "$here/Cargo.toml"
  binary="${CARGO_TARGET_DIR:-$here/target}/release/baton"
fi
[ -x "$binary" ] || { echo "dist.sh: no executable at $binary" >&2; exit 1; }
stage=$(mktemp -d "${TMPDIR:-/tmp}/baton-dist.XXXXXX")
trap 'rm -rf "$stage"' EXIT
# What ships is the binary without its symbols (a third of its size).
cp "$binary" "$stage/baton"
if command -v strip >/dev/null 2>&1; then
  strip "$stage/baton"
else
  echo "dist.sh: no strip on PATH (binutils); the binary ships with its symbols" >&2
fi
binary="$stage/baton"
version=$("$binary" --version | awk '{print $2}')
target=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')
if [ -z "$target" ]; then
  target="$(uname -m)-unknown-$(uname -s | tr '[:upper:]' '[:lower:]')"
fi
mkdir -p "$out"

# The archive.
name="baton-$version-$target"
dir="$stage/$name"
mkdir -p "$dir/completions"
cp "$binary" "$dir/baton"
chmod 755 "$dir/baton"
"$binary" man > "$dir/baton.1"
"$binary" completions bash > "$dir/completions/baton.bash"
"$binary" completions zsh > "$dir/completions/_baton"
"$binary" completions fish > "$dir/completions/baton.fish"
cp "$here/README.md" "$here/LICENSE-MIT" "$here/LICENSE-APACHE" "$dir/"
tar -C "$stage" -czf "$out/$name.tar.gz" "$name"
echo "wrote $out/$name.tar.gz" >&2

# The wheel: the binary under <name>.data/scripts, which pip installs into
# the environment's bin; tagged for the oldest glibc the binary accepts.
python3 - "$binary" "$version" "$out" "$here" <<'PY'
import base64, hashlib, platform, re, sys, zipfile
binary, version, out, here = sys.argv[1:5]
data = open(binary, "rb").read()
needs = [tuple(map(int, v.split(b"."))) for v in re.findall(rb"GLIBC_(\d+\.\d+)", data)]
major, minor = max(needs) if needs else (2, 17)
arch = platform.machine()
plat = f"manylinux_{major}_{minor}_{arch}" if sys.platform.startswith("linux") else f"{sys.platform}_{arch}"
dist = "baton_cli"
info = f"{dist}-{version}.dist-info"
wheel = f"{out}/{dist}-{version}-py3-none-{plat}.whl"
readme = open(f"{here}/README.md").read()
files = {
    f"{dist}-{version}.data/scripts/baton": (data, 0o755),
    f"{info}/METADATA": ((
        "Metadata-Version: 2.1\n"
        "Name: baton-cli\n"
        f"Version: {version}\n"
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

# The npm package: the binary as its `bin`, for this platform only.
pkg="$stage/npm"
mkdir -p "$pkg/bin"
cp "$binary" "$pkg/bin/baton"
chmod 755 "$pkg/bin/baton"
cp "$here/README.md" "$here/LICENSE-MIT" "$here/LICENSE-APACHE" "$pkg/"
node_os=$(node -p 'process.platform')
node_cpu=$(node -p 'process.arch')
cat > "$pkg/package.json" <<JSON
{
  "name": "baton-cli",
  "version": "$version",
  "description": "Run a team of AI coding agents on one repository.",
  "license": "MIT OR Apache-2.0",
  "bin": { "baton": "bin/baton" },
  "os": ["$node_os"],
  "cpu": ["$node_cpu"],
  "files": ["bin/baton", "README.md", "LICENSE-MIT", "LICENSE-APACHE"]
}
JSON
(cd "$pkg" && npm pack --silent --pack-destination "$out" >/dev/null)
echo "wrote $out/baton-cli-$version.tgz" >&2

(cd "$out" && sha256sum "$name.tar.gz" baton_cli-"$version"-*.whl "baton-cli-$version.tgz" > SHA256SUMS)
echo "wrote $out/SHA256SUMS" >&2
