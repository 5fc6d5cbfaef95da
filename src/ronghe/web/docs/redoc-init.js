// Starts ReDoc on /redoc, from a file so that the Content-Security-Policy can forbid inline
// scripts.  ReDoc writes its styles into <style> elements: it stamps them with the nonce
// this script was given, which the page's CSP allows for styles and nothing else.
"use strict";
(() => {
  const root = document.getElementById("redoc");
  const nonce = document.currentScript ? document.currentScript.nonce : "";
  Redoc.init(root.dataset.openapi, { nonce }, root);
})();
