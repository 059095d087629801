import { GGMLFileQuantizationType, GGMLQuantizationType, GGUFValueType } from '@huggingface/gguf'

export { GGMLQuantizationType, GGUFValueType }

export type GgufScalar = string | number | bigint | boolean

/** A metadata value with its wire type, as the GGUF format stores it. */
export type GgufValue =
  | { type: Exclude<GGUFValueType, GGUFValueType.ARRAY>; value: GgufScalar }
  | { type: GGUFValueType.ARRAY; subType: Exclude<GGUFValueType, GGUFValueType.ARRAY>; value: GgufScalar[] }

/** [elements per block, bytes per block] for each tensor type llama.cpp writes. */
const BLOCK: Partial<Record<GGMLQuantizationType, readonly [number, number]>> = {
  [GGMLQuantizationType.F32]: [1, 4],
  [GGMLQuantizationType.F16]: [1, 2],
  [GGMLQuantizationType.BF16]: [1, 2],
  [GGMLQuantizationType.F64]: [1, 8],
  [GGMLQuantizationType.I8]: [1, 1],
  [GGMLQuantizationType.I16]: [1, 2],
  [GGMLQuantizationType.I32]: [1, 4],
  [GGMLQuantizationType.I64]: [1, 8],
  [GGMLQuantizationType.Q4_0]: [32, 18],
  [GGMLQuantizationType.Q4_1]: [32, 20],
  [GGMLQuantizationType.Q5_0]: [32, 22],
  [GGMLQuantizationType.Q5_1]: [32, 24],
  [GGMLQuantizationType.Q8_0]: [32, 34],
  [GGMLQuantizationType.Q8_1]: [32, 36],
  [GGMLQuantizationType.Q2_K]: [256, 84],
  [GGMLQuantizationType.Q3_K]: [256, 110],
  [GGMLQuantizationType.Q4_K]: [256, 144],
  [GGMLQuantizationType.Q5_K]: [256, 176],
  [GGMLQuantizationType.Q6_K]: [256, 210],
  [GGMLQuantizationType.Q8_K]: [256, 292],
  [GGMLQuantizationType.IQ2_XXS]: [256, 66],
  [GGMLQuantizationType.IQ2_XS]: [256, 74],
  [GGMLQuantizationType.IQ3_XXS]: [256, 98],
  [GGMLQuantizationType.IQ1_S]: [256, 50],
  [GGMLQuantizationType.IQ4_NL]: [32, 18],
  [GGMLQuantizationType.IQ3_S]: [256, 110],
  [GGMLQuantizationType.IQ2_S]: [256, 82],
  [GGMLQuantizationType.IQ4_XS]: [256, 136],
  [GGMLQuantizationType.IQ1_M]: [256, 56],
  [GGMLQuantizationType.TQ1_0]: [256, 54],
  [GGMLQuantizationType.TQ2_0]: [256, 66],
  [GGMLQuantizationType.MXFP4]: [32, 17],
}

/** Bytes a tensor of this type and element count occupies; undefined for a type velo does not know. */
export function tensorBytes(type: GGMLQuantizationType, elements: number): number | undefined {
  const block = BLOCK[type]
  if (!block) return undefined
  return Math.ceil(elements / block[0]) * block[1]
}

export function tensorTypeName(type: GGMLQuantizationType): string {
  return GGMLQuantizationType[type] ?? `type${type}`
}

/** `general.file_type` as llama.cpp names it (`MOSTLY_Q4_K_M` -> `Q4_K_M`). */
export function fileTypeName(fileType: number | undefined): string | undefined {
  if (fileType === undefined) return undefined
  const name = (GGMLFileQuantizationType as unknown as Record<number, string | undefined>)[fileType]
  return name?.replace(/^MOSTLY_/, '') ?? `type${fileType}`
}
