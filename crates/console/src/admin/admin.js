// Admin area (settings and tenants): its copy buttons use the shared `data-copy` handler
// (assets/console.js).
