// Merged by @jupyter/builder into its own configuration (package.json jupyterlab.rspackConfig).
// static/ is served with an immutable cache header, so each file's name carries a hash of
// its content: sha256 (first 20 hex digits) of the file as written, so that anyone can check
// a name against its file (`sha256sum static/*.js`; tests/browser/test_lab_notices.py does).
module.exports = {
  output: {
    hashFunction: 'sha256',
    hashDigestLength: 20
  },
  optimization: {
    // Ids by module order, not by a hash of paths: the container's entry module is named
    // by the absolute paths it exposes, which would make the output depend on the checkout.
    moduleIds: 'natural',
    realContentHash: true
  }
};
