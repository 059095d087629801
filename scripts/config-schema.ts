/**
 * Writes docs/velo.schema.json, the JSON Schema of velo.yaml generated from the zod schema, so
 * editors can complete and check the config. test/unit/proxy-config-schema.test.ts fails when the
 * file is stale; run `npx tsx scripts/config-schema.ts` after changing src/core/config/schema.ts.
 */
import { writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { configJsonSchema } from '../src/core/config/schema.js'

export const SCHEMA_FILE = fileURLToPath(new URL('../docs/velo.schema.json', import.meta.url))

export function schemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await writeFile(SCHEMA_FILE, schemaText())
  console.log(`wrote ${SCHEMA_FILE}`)
}
