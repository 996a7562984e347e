// Starts Swagger UI on /docs from local files (FastAPI's default page loads it from a CDN
// with an inline script, which the Content-Security-Policy refuses).
const root = document.getElementById('swagger-ui');
window.SwaggerUIBundle({
  url: root.dataset.openapi,
  domNode: root,
  deepLinking: true,
  // no request to validator.swagger.io: the page talks to this server only
  validatorUrl: null,
  presets: [window.SwaggerUIBundle.presets.apis],
  layout: 'BaseLayout',
});
