import { existsSync } from 'node:fs'
import { mkdir, rename, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { ensureEngineSource } from '../engine/source.js'
import { VeloError } from '../errors.js'
import { readGguf } from '../gguf/read.js'
import { GGMLQuantizationType, GGUFValueType, type GgufValue } from '../gguf/types.js'
import { type GgufTensorSpec, writeGguf } from '../gguf/write.js'
import { cacheDir } from '../paths.js'

export type SynthSize = 'tiny' | 'small'

/** Bumped whenever synthesized bytes change, so caches of synthetic models are keyed by it. */
export const SYNTH_FORMAT_VERSION = 1

/** Where velo keeps its own synthetic models: the default model when the user has none. */
export function synthCachePath(size: SynthSize, env: NodeJS.ProcessEnv = process.env): string {
  return join(cacheDir(env), 'models', `synth-v${SYNTH_FORMAT_VERSION}`, `velo-${size}.gguf`)
}

/** The cached synthetic model of this size, written on first use. */
export async function ensureSynthModel(
  size: SynthSize,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const path = synthCachePath(size, env)
  if (!existsSync(path)) {
    await mkdir(dirname(path), { recursive: true })
    await synthesizeModel({ size, out: path, env })
  }
  return path
}

export interface SynthShape {
  embedding: number
  layers: number
  feedForward: number
  heads: number
  kvHeads: number
  contextLength: number
}

/**
 * tiny: ~20M parameters (functional tests, loads in well under a second).
 * small: ~125M parameters (throughput and optimize tests; decodes at a realistic pace on a few cores).
 */
export const SYNTH_SHAPES: Record<SynthSize, SynthShape> = {
  tiny: { embedding: 256, layers: 4, feedForward: 688, heads: 4, kvHeads: 4, contextLength: 4096 },
  small: { embedding: 768, layers: 12, feedForward: 2048, heads: 12, kvHeads: 4, contextLength: 8192 },
}

/** A ChatML/Hermes template: llama.cpp recognises `<tool_call>` and parses tool calls out of it. */
export const SYNTH_CHAT_TEMPLATE = `{%- if tools %}<|im_start|>system
{% if messages[0].role == 'system' %}{{ messages[0].content }}

{% endif %}You may call one or more functions. Function signatures are within <tools></tools> XML tags:
<tools>
{% for tool in tools %}{{ tool | tojson }}
{% endfor %}</tools>
For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
{% elif messages[0].role == 'system' %}<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == 'system' and loop.first %}
{%- elif message.role == 'tool' %}<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% elif message.role == 'assistant' and message.tool_calls %}<|im_start|>assistant
{% if message.content %}{{ message.content }}
{% endif %}{% for tc in message.tool_calls %}{% if tc.function is defined %}{% set tc = tc.function %}{% endif %}<tool_call>
{"name": "{{ tc.name }}", "arguments": {{ tc.arguments | tojson }}}
</tool_call>
{% endfor %}<|im_end|>
{% else %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}`

/** The same conversation format as an Ollama (Go) template, tools included, for `ollama create`. */
export const SYNTH_OLLAMA_TEMPLATE = `{{- if or .System .Tools }}<|im_start|>system
{{ if .System }}{{ .System }}

{{ end }}{{- if .Tools }}You may call one or more functions. Function signatures are within <tools></tools> XML tags:
<tools>
{{- range .Tools }}
{"type": "function", "function": {{ .Function }}}
{{- end }}
</tools>
For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call>{{ end }}<|im_end|>
{{ end }}
{{- range .Messages }}
{{- if eq .Role "assistant" }}<|im_start|>assistant
{{ if .Content }}{{ .Content }}{{ end }}{{ range .ToolCalls }}<tool_call>
{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
</tool_call>{{ end }}<|im_end|>
{{ else if eq .Role "tool" }}<|im_start|>user
<tool_response>
{{ .Content }}
</tool_response><|im_end|>
{{ else if ne .Role "system" }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}
{{- end }}<|im_start|>assistant
`

export interface SynthOptions {
  size: SynthSize
  out: string
  seed?: number
  env?: NodeJS.ProcessEnv
  /** The vocab-only GGUF whose tokenizer the model reuses; by default llama.cpp's llama-spm vocab. */
  vocabPath?: string
  log?: (line: string) => void
}

export interface SynthResult {
  path: string
  size: SynthSize
  parameterCount: number
  fileBytes: number
  seconds: number
}

/** mulberry32: small, fast and seedable, so the same seed gives the same model bytes. */
function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }
}

function toHalf(value: number): number {
  const f32 = new Float32Array([value])
  const bits = new Uint32Array(f32.buffer)[0] ?? 0
  const sign = (bits >>> 16) & 0x8000
  const exponent = ((bits >>> 23) & 0xff) - 127 + 15
  const mantissa = bits & 0x7fffff
  if (exponent <= 0) return sign
  if (exponent >= 31) return sign | 0x7c00
  return sign | (exponent << 10) | (mantissa >>> 13)
}

/** 4096 f16 samples of N(0, std) (Box-Muller), indexed by random bits: fast enough for 100M+ weights. */
function halfTable(next: () => number, std: number): Uint16Array {
  const table = new Uint16Array(4096)
  for (let i = 0; i < table.length; i += 2) {
    const u1 = (next() + 1) / 4294967297
    const u2 = next() / 4294967296
    const r = Math.sqrt(-2 * Math.log(u1)) * std
    table[i] = toHalf(r * Math.cos(2 * Math.PI * u2))
    table[i + 1] = toHalf(r * Math.sin(2 * Math.PI * u2))
  }
  return table
}

function randomHalf(next: () => number, table: Uint16Array): (buffer: Uint8Array) => void {
  return (buffer) => {
    const halves = new Uint16Array(buffer.buffer, buffer.byteOffset, buffer.byteLength / 2)
    for (let i = 0; i < halves.length; i++) halves[i] = table[next() & 4095] ?? 0
  }
}

function ones(buffer: Uint8Array): void {
  new Float32Array(buffer.buffer, buffer.byteOffset, buffer.byteLength / 4).fill(1)
}

/** Write a llama-architecture GGUF with seeded random F16 weights and a real tokenizer. */
export async function synthesizeModel(options: SynthOptions): Promise<SynthResult> {
  const started = performance.now()
  const shape = SYNTH_SHAPES[options.size]
  if (!shape) throw new VeloError('VELO_BAD_REQUEST', `unknown size ${options.size}: expected tiny or small`)
  const log = options.log ?? (() => {})
  const vocabPath =
    options.vocabPath ??
    join((await ensureEngineSource(options.env, log)).dir, 'models', 'ggml-vocab-llama-spm.gguf')
  if (!existsSync(vocabPath)) {
    throw new VeloError('VELO_NOT_FOUND', `vocab GGUF ${vocabPath} not found`, {
      suggestion: 'run `velo engine install` to fetch the llama.cpp source',
    })
  }
  const vocab = await readGguf(vocabPath)
  const vocabSize = vocab.summary.vocabSize
  if (!vocabSize) throw new VeloError('VELO_GGUF_INVALID', `${vocabPath} has no tokenizer.ggml.tokens`)
  const headDim = shape.embedding / shape.heads
  const kvWidth = headDim * shape.kvHeads
  const u32 = (value: number): GgufValue => ({ type: GGUFValueType.UINT32, value })
  const f32 = (value: number): GgufValue => ({ type: GGUFValueType.FLOAT32, value })
  const str = (value: string): GgufValue => ({ type: GGUFValueType.STRING, value })
  const metadata: Record<string, GgufValue> = {
    'general.architecture': str('llama'),
    'general.name': str(`velo-synth-${options.size}`),
    'general.file_type': u32(1),
    'general.quantization_version': u32(2),
    'llama.context_length': u32(shape.contextLength),
    'llama.embedding_length': u32(shape.embedding),
    'llama.block_count': u32(shape.layers),
    'llama.feed_forward_length': u32(shape.feedForward),
    'llama.attention.head_count': u32(shape.heads),
    'llama.attention.head_count_kv': u32(shape.kvHeads),
    'llama.rope.dimension_count': u32(headDim),
    'llama.rope.freq_base': f32(10000),
    'llama.attention.layer_norm_rms_epsilon': f32(1e-5),
    'llama.vocab_size': u32(vocabSize),
  }
  for (const [key, value] of Object.entries(vocab.metadata)) {
    if (key.startsWith('tokenizer.') && key !== 'tokenizer.chat_template') metadata[key] = value
  }
  metadata['tokenizer.chat_template'] = str(SYNTH_CHAT_TEMPLATE)
  // llama.cpp feeds the chat template's generation prompt through the grammar of json_schema and
  // tool-call requests; SPM's space prefix would make it drop the prompt's first token and reject them.
  metadata['tokenizer.ggml.add_space_prefix'] = { type: GGUFValueType.BOOL, value: false }

  const next = prng(options.seed ?? 42)
  const table = halfTable(next, 0.02)
  const weights = randomHalf(next, table)
  const F16 = GGMLQuantizationType.F16
  const F32 = GGMLQuantizationType.F32
  const tensors: GgufTensorSpec[] = [
    { name: 'token_embd.weight', shape: [shape.embedding, vocabSize], type: F16, fill: weights },
  ]
  for (let layer = 0; layer < shape.layers; layer++) {
    const blk = `blk.${layer}`
    tensors.push(
      { name: `${blk}.attn_norm.weight`, shape: [shape.embedding], type: F32, fill: ones },
      { name: `${blk}.attn_q.weight`, shape: [shape.embedding, shape.embedding], type: F16, fill: weights },
      { name: `${blk}.attn_k.weight`, shape: [shape.embedding, kvWidth], type: F16, fill: weights },
      { name: `${blk}.attn_v.weight`, shape: [shape.embedding, kvWidth], type: F16, fill: weights },
      {
        name: `${blk}.attn_output.weight`,
        shape: [shape.embedding, shape.embedding],
        type: F16,
        fill: weights,
      },
      { name: `${blk}.ffn_norm.weight`, shape: [shape.embedding], type: F32, fill: ones },
      {
        name: `${blk}.ffn_gate.weight`,
        shape: [shape.embedding, shape.feedForward],
        type: F16,
        fill: weights,
      },
      { name: `${blk}.ffn_up.weight`, shape: [shape.embedding, shape.feedForward], type: F16, fill: weights },
      {
        name: `${blk}.ffn_down.weight`,
        shape: [shape.feedForward, shape.embedding],
        type: F16,
        fill: weights,
      },
    )
  }
  tensors.push(
    { name: 'output_norm.weight', shape: [shape.embedding], type: F32, fill: ones },
    { name: 'output.weight', shape: [shape.embedding, vocabSize], type: F16, fill: weights },
  )
  // Written beside the target and renamed, so a half-written model never sits at the path.
  const staging = join(dirname(options.out), `.${Date.now()}-${process.pid}.gguf.tmp`)
  try {
    await writeGguf(staging, { metadata, tensors })
    await rename(staging, options.out)
  } catch (error) {
    await rm(staging, { force: true })
    throw error
  }
  const written = await readGguf(options.out)
  return {
    path: written.summary.path,
    size: options.size,
    parameterCount: written.summary.parameterCount,
    fileBytes: written.summary.fileBytes,
    seconds: (performance.now() - started) / 1000,
  }
}
