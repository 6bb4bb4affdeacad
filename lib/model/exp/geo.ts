/**
 * GeoJSON for cmpGeo: whether a point lies within a region, as Aerospike's expression
 * compares a point with a region (the server's particle_geojson.c as_geojson_match): true when
 * one side is a point and the other a region containing it; two points or two regions are
 * false. The shapes Aerospike reads (the server's geojson.cc): Point, Polygon (a shell and
 * holes), MultiPolygon, AeroCircle ([[lng, lat], radius in meters]) and a Feature holding one
 * of them; coordinates are [longitude, latitude] in degrees.
 *
 * Edges are geodesics, as in Aerospike's S2 geometry: a loop is tested in the gnomonic
 * projection centred on its vertices' centroid, which maps great circles to straight lines,
 * so the planar crossing test there is exact. A loop must lie within the hemisphere around
 * that centroid (Aerospike normalises every loop to at most a hemisphere; Shoal refuses larger
 * ones), and a polygon contains a point that an odd number of its loops contain (a hole
 * inside its shell). Circles use Aerospike's earth radius, 6,371,000 m. Aerospike rounds a
 * point to an S2 leaf cell (about a centimetre), Shoal does not.
 */

/** The earth radius Aerospike's geo2dsphere uses by default (meters). */
const EARTH_RADIUS_METERS = 6_371_000;
/** Loops may have at most this many vertices (bounds the work of one comparison). */
const LOOP_VERTICES_MAX = 100_000;

type Vector = [number, number, number];

interface Loop {
  center: Vector;
  /** Tangent basis at the center, and the vertices in gnomonic coordinates. */
  east: Vector;
  north: Vector;
  xs: Float64Array;
  ys: Float64Array;
}

/** A parsed geometry: a point, or a region (polygons, possibly several, or a circle). */
export type Geometry = { kind: 'point'; at: Vector } | { kind: 'polygons'; polygons: Loop[][] } | { kind: 'circle'; center: Vector; radians: number };

/** A GeoJSON value that is not one of the shapes above, or is malformed. */
export class GeoJsonError extends Error {
  override readonly name = 'GeoJsonError';
}

/**
 * Parses GeoJSON text.
 * @throws GeoJsonError for text that is not JSON or not a supported shape.
 */
export function parseGeoJson(text: string): Geometry {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new GeoJsonError('not JSON');
  }
  return geometryOf(json, true);
}

function field(value: unknown, name: string): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new GeoJsonError('a GeoJSON element must be an object');
  return (value as Record<string, unknown>)[name];
}

function geometryOf(json: unknown, topLevel: boolean): Geometry {
  const type = field(json, 'type');
  if (typeof type !== 'string') throw new GeoJsonError('a GeoJSON element has no type');
  const coordinates = field(json, 'coordinates');
  switch (type) {
    case 'Feature':
      if (!topLevel) throw new GeoJsonError('a Feature inside a Feature');
      return geometryOf(field(json, 'geometry'), false);
    case 'Point':
      return { kind: 'point', at: pointOf(coordinates) };
    case 'Polygon':
      return { kind: 'polygons', polygons: [polygonOf(coordinates)] };
    case 'MultiPolygon':
      return { kind: 'polygons', polygons: arrayOf(coordinates, 'MultiPolygon coordinates').map(polygonOf) };
    case 'AeroCircle': {
      const parts = arrayOf(coordinates, 'AeroCircle coordinates');
      if (parts.length !== 2 || typeof parts[1] !== 'number' || !Number.isFinite(parts[1]) || parts[1] < 0) throw new GeoJsonError('an AeroCircle is [[lng, lat], radius]');
      return { kind: 'circle', center: pointOf(parts[0]), radians: parts[1] / EARTH_RADIUS_METERS };
    }
    default:
      throw new GeoJsonError(`GeoJSON type ${type} is not one Aerospike compares (Point, Polygon, MultiPolygon, AeroCircle)`);
  }
}

function arrayOf(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw new GeoJsonError(`${what} must be an array`);
  return value;
}

/** [lng, lat] in degrees as a unit vector. */
function pointOf(value: unknown): Vector {
  const pair = arrayOf(value, 'a position');
  const [lng, lat] = pair;
  if (pair.length !== 2 || typeof lng !== 'number' || typeof lat !== 'number' || !Number.isFinite(lng) || !Number.isFinite(lat) || Math.abs(lat) > 90) {
    throw new GeoJsonError('a position is [longitude, latitude] with |latitude| <= 90');
  }
  const phi = (lat * Math.PI) / 180;
  const lambda = (lng * Math.PI) / 180;
  return [Math.cos(phi) * Math.cos(lambda), Math.cos(phi) * Math.sin(lambda), Math.sin(phi)];
}

function polygonOf(value: unknown): Loop[] {
  const loops = arrayOf(value, 'polygon coordinates');
  if (loops.length === 0) throw new GeoJsonError('a polygon without loops');
  return loops.map(loopOf);
}

/** A closed ring of at least 4 positions (the first repeated last), repeated neighbours dropped. */
function loopOf(value: unknown): Loop {
  const ring = arrayOf(value, 'a loop');
  if (ring.length > LOOP_VERTICES_MAX) throw new GeoJsonError(`a loop has more than ${LOOP_VERTICES_MAX} vertices`);
  const points: Vector[] = [];
  for (const position of ring) {
    const point = pointOf(position);
    const last = points[points.length - 1];
    if (last === undefined || !same(last, point)) points.push(point);
  }
  if (points.length < 4) throw new GeoJsonError('a loop has fewer than 4 positions');
  if (!same(points[0]!, points[points.length - 1]!)) throw new GeoJsonError('a loop is not closed');
  points.pop();
  const center = normalize(points.reduce<Vector>((sum, p) => [sum[0] + p[0], sum[1] + p[1], sum[2] + p[2]], [0, 0, 0]));
  const east = normalize(Math.abs(center[2]) < 0.9 ? cross([0, 0, 1], center) : cross([1, 0, 0], center));
  const north = cross(center, east);
  const xs = new Float64Array(points.length);
  const ys = new Float64Array(points.length);
  points.forEach((point, i) => {
    const depth = dot(point, center);
    if (!(depth > 1e-12)) throw new GeoJsonError('a loop larger than a hemisphere');
    xs[i] = dot(point, east) / depth;
    ys[i] = dot(point, north) / depth;
  });
  return { center, east, north, xs, ys };
}

function same(a: Vector, b: Vector): boolean {
  return a[0] === b[0] && a[1] === b[1] && a[2] === b[2];
}

function dot(a: Vector, b: Vector): number {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

function cross(a: Vector, b: Vector): Vector {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}

function normalize(v: Vector): Vector {
  const length = Math.hypot(v[0], v[1], v[2]);
  if (length === 0) throw new GeoJsonError('a loop whose vertices cancel out (it spans the globe)');
  return [v[0] / length, v[1] / length, v[2] / length];
}

/** Whether a loop contains a point: the crossing test in the loop's gnomonic projection. */
function loopContains(loop: Loop, point: Vector): boolean {
  const depth = dot(point, loop.center);
  if (depth <= 0) return false;
  const x = dot(point, loop.east) / depth;
  const y = dot(point, loop.north) / depth;
  const { xs, ys } = loop;
  let inside = false;
  for (let i = 0, j = xs.length - 1; i < xs.length; j = i++) {
    const yi = ys[i]!;
    const yj = ys[j]!;
    if (yi > y !== yj > y && x < ((xs[j]! - xs[i]!) * (y - yi)) / (yj - yi) + xs[i]!) inside = !inside;
  }
  return inside;
}

function regionContains(region: Geometry, point: Vector): boolean {
  if (region.kind === 'circle') return Math.acos(Math.max(-1, Math.min(1, dot(region.center, point)))) <= region.radians;
  if (region.kind === 'point') return false;
  return region.polygons.some((loops) => loops.filter((loop) => loopContains(loop, point)).length % 2 === 1);
}

/** cmpGeo: a point within a region, on either side; false for two points or two regions. */
export function geoMatches(left: Geometry, right: Geometry): boolean {
  if (left.kind === 'point') return right.kind !== 'point' && regionContains(right, left.at);
  if (right.kind === 'point') return regionContains(left, right.at);
  return false;
}
