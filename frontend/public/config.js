// Settings of the isobar dashboard, read before it starts.
//
// apiOrigin: where the daemon's API and websocket are, when the dashboard
// is published apart from it (S3 behind CloudFront, say), for example
// "https://api.wx.example.net". Empty: the page's own origin, as when the
// daemon serves the dashboard itself. scripts/publish-dashboard.sh writes
// this file for a static publication.
window.isobarConfig = { apiOrigin: '' };
