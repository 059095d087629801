import type { DiscoveredModel } from '../models/discover.js'
import { bytesReadPerToken, type FitModel } from './fit.js'
import type { ModelEntry } from './types.js'

/** The header facts of a discovered model, without its tensor table. */
export function describeModel(model: DiscoveredModel): ModelEntry {
  const s = model.summary
  return {
    id: model.id,
    path: model.path,
    source: model.source,
    ollamaName: model.ollamaName,
    fileBytes: model.fileBytes,
    architecture: s.architecture ?? null,
    name: s.name ?? null,
    parameterCount: s.parameterCount,
    quantization: s.fileType ?? null,
    contextLength: s.contextLength ?? null,
    layers: s.blockCount ?? null,
    embeddingLength: s.embeddingLength ?? null,
    headCount: s.headCount ?? null,
    headCountKv: s.headCountKv ?? null,
    headDim: s.headDim ?? null,
  }
}

/** What the fit arithmetic needs from a model. */
export function fitModelOf(model: DiscoveredModel): FitModel {
  const s = model.summary
  const perToken = bytesReadPerToken(s.tensors, model.experts)
  // A split model's first shard lists only its own tensors: scale by the files' total.
  const split = model.fileBytes > s.fileBytes
  const scale = split ? model.fileBytes / s.fileBytes : 1
  return {
    weightsBytes: split ? model.fileBytes : s.tensorBytes || s.fileBytes,
    bytesPerToken: Math.round(perToken * scale),
    layers: s.blockCount ?? null,
    kvHeads: s.headCountKv ?? null,
    headDim: s.headDim ?? null,
    vocabSize: s.vocabSize ?? null,
    trainedContext: s.contextLength ?? null,
  }
}
