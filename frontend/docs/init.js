// Starts Swagger UI on the daemon's OpenAPI document, fetched from the page's
// own origin. A file rather than an inline script, so that the page works
// under a Content-Security-Policy without 'unsafe-inline'.
(function () {
  'use strict';
  window.ui = SwaggerUIBundle({
    url: '/api/v1/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: 'BaseLayout',
    // The default sends the document to validator.swagger.io for a badge.
    validatorUrl: null,
    // Only this page chooses the document: no ?url= or ?configUrl= from links.
    queryConfigEnabled: false,
  });
})();
