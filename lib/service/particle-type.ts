/** Aerospike's particle (value) types on the wire: below both the codec (particles.ts) and the dialect (dialect.ts). */
export const ParticleType = {
  NULL: 0,
  INTEGER: 1,
  DOUBLE: 2,
  STRING: 3,
  BLOB: 4,
  BOOL: 17,
  HLL: 18,
  MAP: 19,
  LIST: 20,
  GEOJSON: 23,
} as const;
