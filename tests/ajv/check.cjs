// Compile a JSON Schema (Draft 2020-12) with ajv in strict mode, then validate data files with it.
// Usage: node check.cjs SCHEMA [DATA.json ...]; prints one JSON line: {"compiled": true,
// "verdicts": {"DATA.json": true|false}} or {"compiled": false, "error": "..."}; exits 0 either way.
"use strict";
const fs = require("fs");
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats").default;

const [schemaPath, ...dataPaths] = process.argv.slice(2);
const ajv = new Ajv2020({ strict: true, allErrors: true });
addFormats(ajv);
let validate;
try {
  validate = ajv.compile(JSON.parse(fs.readFileSync(schemaPath, "utf8")));
} catch (error) {
  console.log(JSON.stringify({ compiled: false, error: String(error.message || error) }));
  process.exit(0);
}
const verdicts = {};
for (const path of dataPaths) {
  verdicts[path] = validate(JSON.parse(fs.readFileSync(path, "utf8")));
}
console.log(JSON.stringify({ compiled: true, verdicts }));
