#!/usr/bin/env bash
# Vendors the offline ipywidgets runtime for the static HTML book into _vendor/widgets/:
#   require.js           (npm: requirejs, MIT)
#   embed-amd.js         (npm: @jupyter-widgets/html-manager, BSD-3-Clause; bundles @jupyter-widgets/base,
#                         controls and output, jQuery/jQuery UI (MIT) and Font Awesome Free's CSS)
#   *.woff2/*.woff/*.ttf (Font Awesome Free fonts, SIL OFL 1.1), loaded by embed-amd.js from its own folder
# and MathJax into _vendor/mathjax/ (npm: mathjax, Apache-2.0): es5/tex-chtml-full.js (all TeX extensions
# built in, so nothing is autoloaded) and its CHTML woff-v2 fonts, at the relative path MathJax loads them from.
# _config.yml copies _vendor/ into _static/ (html_static_path) and points `nb_ipywidgets_js` and `mathjax_path`
# at these files, so widget views and equations render without any CDN. The output is committed; re-run this script only to change versions.
# Needs npm and access to the npm registry. Versions: HTML_MANAGER (must match ipywidgets 8 -> 1.0.x).
set -euo pipefail
HTML_MANAGER="${HTML_MANAGER:-1.0.15}"
REQUIREJS="${REQUIREJS:-2.3.8}"
FONTAWESOME="${FONTAWESOME:-5.15.4}"
MATHJAX="${MATHJAX:-3.2.2}"   # the version embed-amd.js bundles (licence text only)
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/_vendor/widgets"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

cd "$TMP"
npm pack --silent "@jupyter-widgets/html-manager@$HTML_MANAGER" "requirejs@$REQUIREJS" \
    "@fortawesome/fontawesome-free@$FONTAWESOME" "mathjax@$MATHJAX" >/dev/null
mkdir hm rq fa mj
tar xzf "mathjax-$MATHJAX.tgz" -C mj
tar xzf "jupyter-widgets-html-manager-$HTML_MANAGER.tgz" -C hm
tar xzf "requirejs-$REQUIREJS.tgz" -C rq
tar xzf "fortawesome-fontawesome-free-$FONTAWESOME.tgz" -C fa package/LICENSE.txt

STAGE="$TMP/stage"
mkdir -p "$STAGE"
cp rq/package/require.js "$STAGE/require.js"
# Drop the source-map comments: the maps are not vendored and a browser would ask for them.
sed -E 's#^//[#] sourceMappingURL=[A-Za-z0-9_.-]+\.js\.map;?$##' hm/package/dist/embed-amd.js > "$STAGE/embed-amd.js"
cp hm/package/dist/*.woff2 hm/package/dist/*.woff hm/package/dist/*.ttf "$STAGE/"
cp hm/package/dist/embed.js.LICENSE.txt "$STAGE/THIRD_PARTY_NOTICES.txt"
cp fa/package/LICENSE.txt "$STAGE/LICENSE.fontawesome-free.txt"
# html-manager is part of the ipywidgets repository and carries its BSD-3-Clause licence (the npm tarball has
# no LICENSE file); the installed ipywidgets distribution ships the same text.
IPYW_LICENSE="$("${PYTHON:-python3}" - <<'PY'
import importlib.metadata as m
files = [f for f in m.distribution("ipywidgets").files if f.name == "LICENSE"]
print(files[0].locate() if files else "")
PY
)"
[ -f "$IPYW_LICENSE" ] || { echo "ipywidgets' LICENSE not found: run with the project's venv python (PYTHON=...)" >&2; exit 1; }
cp "$IPYW_LICENSE" "$STAGE/LICENSE.html-manager.txt"
cat > "$STAGE/LICENSE.requirejs.txt" <<'MIT'
RequireJS (https://github.com/requirejs/requirejs), MIT License

Copyright jQuery Foundation and other contributors, https://jquery.org/

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
documentation files (the "Software"), to deal in the Software without restriction, including without limitation
the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and
to permit persons to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial portions
of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO
THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF
CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS
IN THE SOFTWARE.
MIT
cat > "$STAGE/VERSIONS" <<VER
@jupyter-widgets/html-manager $HTML_MANAGER  dist/embed-amd.js (source-map comments removed), Font Awesome fonts
requirejs $REQUIREJS  require.js
@fortawesome/fontawesome-free $FONTAWESOME  LICENSE.txt only (its fonts come with html-manager)
VER

MJ_STAGE="$TMP/mathjax"
mkdir -p "$MJ_STAGE/output/chtml/fonts"
cp mj/package/es5/tex-chtml-full.js "$MJ_STAGE/"
cp -r mj/package/es5/output/chtml/fonts/woff-v2 "$MJ_STAGE/output/chtml/fonts/"
cp mj/package/LICENSE "$MJ_STAGE/LICENSE.mathjax.txt"
echo "mathjax $MATHJAX  es5/tex-chtml-full.js and es5/output/chtml/fonts/woff-v2/" > "$MJ_STAGE/VERSIONS"

rm -rf "$DEST" "$ROOT/_vendor/mathjax"
mkdir -p "$(dirname "$DEST")"
mv "$STAGE" "$DEST"
mv "$MJ_STAGE" "$ROOT/_vendor/mathjax"
echo "vendored into $ROOT/_vendor:"
du -sh "$DEST" "$ROOT/_vendor/mathjax"
