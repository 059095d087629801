import Table from 'cli-table3'
import type { CpuFeature, MachineReport, ModelFit } from './types.js'

const GIB = 1024 ** 3
const MIB = 1024 ** 2

export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return '?'
  if (bytes >= GIB) return `${(bytes / GIB).toFixed(1)} GiB`
  if (bytes >= MIB) return `${(bytes / MIB).toFixed(bytes >= 100 * MIB ? 0 : 1)} MiB`
  return `${Math.round(bytes / 1024)} KiB`
}

export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`
  return String(n)
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}

/** Borderless, uncoloured tables: readable in a terminal, a log file or a CI job. */
export function table(head: string[], rows: string[][]): string {
  const t = new Table({
    head,
    chars: {
      top: '',
      'top-mid': '',
      'top-left': '',
      'top-right': '',
      bottom: '',
      'bottom-mid': '',
      'bottom-left': '',
      'bottom-right': '',
      left: '  ',
      'left-mid': '',
      mid: '',
      'mid-mid': '',
      right: '',
      'right-mid': '',
      middle: '  ',
    },
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 },
  })
  t.push(...rows)
  return t
    .toString()
    .split('\n')
    .map((line) => line.trimEnd())
    .join('\n')
}

const FEATURE_LABELS: Record<CpuFeature, string> = {
  avx: 'AVX',
  avx2: 'AVX2',
  avx512: 'AVX-512',
  avx512_vnni: 'AVX512-VNNI',
  avx512_bf16: 'AVX512-BF16',
  avx_vnni: 'AVX-VNNI',
  amx: 'AMX',
  f16c: 'F16C',
  fma: 'FMA',
  neon: 'NEON',
  dotprod: 'DOTPROD',
  i8mm: 'I8MM',
  sve: 'SVE',
}

function featureLine(features: Record<CpuFeature, boolean | null>): string {
  const entries = Object.entries(features) as Array<[CpuFeature, boolean | null]>
  const has = entries.filter(([, v]) => v === true).map(([k]) => FEATURE_LABELS[k])
  const unknown = entries.filter(([, v]) => v === null).map(([k]) => FEATURE_LABELS[k])
  let line = has.length > 0 ? has.join(' ') : 'none of the ones llama.cpp uses'
  if (unknown.length > 0) line += ` (unknown: ${unknown.join(' ')})`
  return line
}

/** Contexts are usually powers of two: 8192 reads better as 8K, 131072 as 128K. */
export function formatContext(tokens: number): string {
  return tokens >= 1024 && tokens % 1024 === 0 ? `${tokens / 1024}K` : String(tokens)
}

function fitCell(fit: ModelFit | null): string {
  if (!fit) return '-'
  return fit.fits ? 'yes' : 'no'
}

function ctxCell(fit: ModelFit | null): string {
  if (!fit || fit.maxContext === null) return '?'
  return formatContext(fit.maxContext)
}

function tpsCell(fit: ModelFit | null): string {
  if (!fit || fit.decodeTokensPerSecondMax === null) return '?'
  const v = fit.decodeTokensPerSecondMax
  return v >= 100 ? v.toFixed(0) : v.toFixed(1)
}

/** The human report: one section per part of the machine, estimates marked as such. */
export function renderMachineReport(report: MachineReport): string {
  const out: string[] = []
  const { cpu, memory, gpus, bandwidth, backends, models } = report
  out.push(
    `velo detect · ${report.os.platform} ${report.os.release}${report.os.distro ? ` (${report.os.distro})` : ''} · ${report.os.hostname} · ${(report.durationMs / 1000).toFixed(1)} s`,
  )

  out.push('', 'CPU')
  const cores = `${cpu.physicalCores ?? '?'} physical / ${cpu.logicalCores} logical cores`
  out.push(`  ${cpu.brand ?? 'unknown CPU'} · ${cpu.architecture} · ${cores}`)
  out.push(`  features: ${featureLine(cpu.features)}`)

  out.push('', 'Memory')
  const cgroup =
    memory.cgroupLimitBytes === null
      ? 'no cgroup limit'
      : `cgroup limit ${formatBytes(memory.cgroupLimitBytes)} (${formatBytes(memory.cgroupUsageBytes)} used)`
  out.push(
    `  total ${formatBytes(memory.totalBytes)} · available ${formatBytes(memory.availableBytes)} · ${cgroup}`,
  )
  out.push(`  usable for a model in RAM: ${formatBytes(memory.usableBytes)}`)

  out.push('', 'GPUs')
  if (gpus.length === 0) {
    out.push('  none found: models run on the CPU')
  } else {
    out.push(
      table(
        ['#', 'name', 'memory', 'free', 'driver', 'compute', 'bandwidth*'],
        gpus.map((gpu) => [
          String(gpu.index),
          gpu.name ?? '?',
          gpu.unifiedMemory ? 'unified' : formatBytes(gpu.vramTotalBytes),
          gpu.unifiedMemory ? '-' : formatBytes(gpu.vramFreeBytes),
          gpu.driverVersion ?? '?',
          gpu.computeCapability ?? (gpu.gpuCores ? `${gpu.gpuCores} cores` : '?'),
          gpu.theoreticalBandwidthGBps === null ? '?' : `${gpu.theoreticalBandwidthGBps.toFixed(0)} GB/s`,
        ]),
      ),
    )
    out.push('  * theoretical: 2 x memory clock x bus width, as the driver reports them')
  }

  out.push('', 'Memory bandwidth')
  const mm = bandwidth.mainMemory
  out.push(
    mm
      ? `  main memory: ${mm.gbPerSecond.toFixed(1)} GB/s measured (copy loop, ${mm.threads} thread${mm.threads === 1 ? '' : 's'}, ${(mm.durationMs / 1000).toFixed(1)} s)`
      : '  main memory: not measured',
  )

  out.push('', 'Backends')
  const rows: string[][] = []
  const o = backends.ollama
  rows.push([
    'Ollama',
    o.url,
    o.version ?? '-',
    o.reachable
      ? `${plural(o.models.length, 'model')}, ${o.loaded.length} loaded`
      : `not running (${o.error ?? 'no answer'})`,
  ])
  for (const binary of backends.llamaServerBinaries) {
    const version = binary.version ? `${binary.version}${binary.commit ? ` (${binary.commit})` : ''}` : '?'
    const where = { path: 'on PATH', velo: 'velo’s build', config: 'from config' }[binary.source]
    rows.push(['llama-server binary', binary.path, version, where])
  }
  if (backends.llamaServerBinaries.length === 0) {
    rows.push(['llama-server binary', '-', '-', 'none (velo engine install builds one)'])
  }
  for (const server of backends.llamaServers) {
    const model = server.modelAlias ?? server.modelPath ?? '?'
    const detail = [
      server.status === 'ok' ? model : `${server.status}: ${model}`,
      server.contextPerSlot ? `ctx ${server.contextPerSlot} per slot` : '',
      server.slots ? `${server.slots} slot${server.slots === 1 ? '' : 's'}` : '',
    ]
    rows.push(['llama-server', server.url, server.buildInfo ?? '?', detail.filter(Boolean).join(', ')])
  }
  if (backends.velo) {
    const v = backends.velo
    rows.push([
      'velo',
      v.url,
      v.version ?? '?',
      v.keyRequired
        ? 'running; needs an admin key (set VELO_API_KEY) to say more'
        : `${plural(v.models.length, 'model')}, ${plural(v.upstreams.length, 'upstream')}`,
    ])
  }
  out.push(table(['backend', 'where', 'version', 'state'], rows))

  if (o.models.length > 0) {
    out.push('', 'Ollama models')
    const loaded = new Map(o.loaded.map((l) => [l.name, l]))
    out.push(
      table(
        ['name', 'family', 'parameters', 'quantization', 'size', 'loaded'],
        o.models.map((m) => {
          const l = loaded.get(m.name)
          return [
            m.name,
            m.family ?? '?',
            m.parameterSize ?? '?',
            m.quantization ?? '?',
            formatBytes(m.sizeBytes),
            l
              ? `yes, ${formatBytes(l.vramBytes)} in VRAM${l.contextLength ? `, ctx ${l.contextLength}` : ''}`
              : '-',
          ]
        }),
      ),
    )
  }

  out.push('', `Models (${models.length})`)
  if (models.length === 0) {
    out.push('  no GGUF files found (pass --models-dir DIR to search a folder)')
  } else {
    const hasGpu = models.some((m) => m.fit.gpu !== null)
    const gpuTarget = models.find((m) => m.fit.gpu)?.fit.gpu?.target === 'unified' ? 'unified' : 'VRAM'
    const head = ['id', 'source', 'arch', 'params', 'quant', 'size', 'ctx']
    if (hasGpu) head.push(`fits ${gpuTarget}*`, 'max ctx*', 't/s ≤*')
    head.push('fits RAM*', 'max ctx*', 't/s ≤*')
    out.push(
      table(
        head,
        models.map((m) => {
          const row = [
            m.id,
            m.source,
            m.architecture ?? '?',
            formatCount(m.parameterCount),
            m.quantization ?? '?',
            formatBytes(m.fileBytes),
            m.contextLength ? formatContext(m.contextLength) : '?',
          ]
          if (hasGpu) row.push(fitCell(m.fit.gpu), ctxCell(m.fit.gpu), tpsCell(m.fit.gpu))
          row.push(fitCell(m.fit.cpu), ctxCell(m.fit.cpu), tpsCell(m.fit.cpu))
          return row
        }),
      ),
    )
    out.push(
      '  * estimates from the GGUF header: "fits" = weights + f16 KV cache at min(ctx, 4096) + runtime reserve;',
      '    "max ctx" = largest context whose KV cache fits beside the weights; "t/s ≤" = bandwidth / bytes',
      '    of weights read per token, an upper bound that real decoding stays below.',
    )
  }

  if (report.notes.length > 0) {
    out.push('', 'Notes')
    for (const note of report.notes) out.push(`  - ${note}`)
  }
  return out.join('\n')
}
