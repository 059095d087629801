// One chat through the official openai client against the velo serve that quickstart.sh started.
import OpenAI from 'openai'

const url = process.env.VELO_URL ?? 'http://127.0.0.1:8000'
const pid = Number(process.env.VELO_PID)
const prompt = process.env.PROMPT ?? 'Hello'

// velo answers /health as soon as it listens; a first run builds the engine before the first answer.
for (;;) {
  if (pid && !isRunning(pid)) {
    console.error('velo serve exited; see its message above')
    process.exit(1)
  }
  const up = await fetch(`${url}/health`).then(
    (response) => response.ok,
    () => false,
  )
  if (up) break
  await new Promise((resolve) => setTimeout(resolve, 300))
}

const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'velo', timeout: 30 * 60_000 })
const { data: models } = await openai.models.list()
const model = models[0]?.id
if (!model) {
  console.error('velo serves no model')
  process.exit(1)
}
const started = performance.now()
const completion = await openai.chat.completions.create({
  model,
  messages: [{ role: 'user', content: prompt }],
  max_tokens: 64,
})
const ms = performance.now() - started
console.log(completion.choices[0]?.message.content?.trim() ?? '')
console.log('')
console.log(
  `${model} via velo serve at ${url} · ${completion.usage?.prompt_tokens ?? '?'} prompt + ` +
    `${completion.usage?.completion_tokens ?? '?'} generated tokens · ${ms.toFixed(0)} ms`,
)

function isRunning(id) {
  try {
    process.kill(id, 0)
    return true
  } catch {
    return false
  }
}
