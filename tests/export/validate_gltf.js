// Validates a glTF file with the Khronos glTF validator (npm gltf-validator); prints its JSON report.
// node validate_gltf.js PATH_TO_THE_VALIDATOR_PACKAGE FILE
const fs = require("fs");
const validator = require(process.argv[2]);
validator.validateBytes(new Uint8Array(fs.readFileSync(process.argv[3])))
  .then((report) => console.log(JSON.stringify(report)))
  .catch((error) => { console.error(String(error)); process.exit(1); });
