// Node-RED settings for the benchmark peer (bench/peer.cc starts it with a temporary userDir and
// port 0). The editor and admin API are off, so there is no credentials prompt and nothing to
// deploy; the flow file is the committed flow.json. Events need the same bearer token as the
// bridge's, so both sides do the same work per request.
const token = process.env.CALLBRIDGE_BENCH_TOKEN || "";

module.exports = {
  uiHost: "127.0.0.1",
  httpAdminRoot: false,
  flowFile: "flows.json",
  credentialSecret: false,
  diagnostics: { enabled: false, ui: false },
  telemetry: { enabled: false, updateNotification: false },
  externalModules: {
    autoInstall: false,
    palette: { allowInstall: false },
    modules: { allowInstall: false },
  },
  logging: { console: { level: "info", metrics: false, audit: false } },
  httpNodeMiddleware: function (req, res, next) {
    if (req.headers.authorization !== "Bearer " + token) {
      res.status(401).json({ error: "unauthorized" });
      return;
    }
    next();
  },
};
