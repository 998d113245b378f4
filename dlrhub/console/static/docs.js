// Starts Swagger UI on /docs with this server's OpenAPI document. A file, not an
// inline script, so the page runs under script-src 'self'. Paths are relative to
// the page so the reference also works behind a proxy that adds a path prefix.
"use strict";

window.addEventListener("DOMContentLoaded", function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    // BaseLayout, without the standalone preset's top bar (it loads any URL typed in).
    layout: "BaseLayout",
    presets: [SwaggerUIBundle.presets.apis],
    deepLinking: true,
    // No badge from validator.swagger.io: the page fetches nothing from elsewhere.
    validatorUrl: null,
    // ?url= and ?configUrl= are ignored: the page shows this server's document only.
    queryConfigEnabled: false,
    // The admin token typed into "Authorize" is kept in memory only, never in storage.
    persistAuthorization: false,
    withCredentials: false,
  });
});
