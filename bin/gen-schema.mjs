#!/usr/bin/env node
// `npm run schema`: writes schema/switchyard.schema.json from config/schema.ts (see
// config/json-schema.ts). A unit test fails while the committed file is out of date.
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const { SCHEMA_FILE, configJsonSchemaText } = await import('../config/json-schema.ts');
const out = fileURLToPath(new URL(`../${SCHEMA_FILE}`, import.meta.url));
await writeFile(out, configJsonSchemaText());
console.log(`wrote ${SCHEMA_FILE}`);
