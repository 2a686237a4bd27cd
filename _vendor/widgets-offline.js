/* ssm-restore: glue for rendering stored ipywidgets offline (loaded after require.js, before embed-amd.js).
 *
 * 1. Each webpack bundle inside embed-amd.js computes the folder of its fonts from its own AMD module id
 *    ("@jupyter-widgets/html-manager/dist/libembed-amd", "@jupyter-widgets/controls", ...), which require.js
 *    resolves against the page's folder (book/@jupyter-widgets/...: 404). Map every one of those ids into the
 *    vendored copy next to this file (_static/widgets/), where the fonts are.
 * 2. The widgets' `typeset` helper calls MathJax 2's `MathJax.Hub.Queue`; the book loads MathJax 3.
 *    Give every MathJax object a `Hub.Queue` that typesets the element with MathJax 3's API.
 */
(function () {
  "use strict";
  var here = document.currentScript ? document.currentScript.src : window.location.href;
  var widgetsDir = here.slice(0, here.lastIndexOf("/") + 1) + "widgets";
  if (window.requirejs && window.requirejs.config) {
    var paths = { "@jupyter-widgets/html-manager/dist": widgetsDir };
    ["html-manager", "base", "base7", "controls", "controls7"].forEach(function (name) {
      paths["@jupyter-widgets/" + name] = widgetsDir + "/" + name;  // module uri widgets/<name>.js
    });
    window.requirejs.config({ paths: paths });
  }

  var current = window.MathJax;
  function addHub(mj) {
    if (!mj || typeof mj !== "object" || mj.Hub) { return; }
    mj.Hub = {
      Queue: function () {
        Array.prototype.forEach.call(arguments, function (job) {
          var el = Array.isArray(job) ? job[2] : null;
          if (current && typeof current.typesetPromise === "function") {
            current.typesetPromise(el ? [el] : undefined).catch(function () {});
          }
        });
      }
    };
  }
  addHub(current);
  Object.defineProperty(window, "MathJax", {
    configurable: true,
    get: function () { return current; },
    set: function (value) { current = value; addHub(value); }
  });
})();
