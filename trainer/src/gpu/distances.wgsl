// Squared Euclidean distances (or, for `pairwise` with score 1, inner products) between rows and points (K-Means
// centres, k-NN index points), both row-major f32 with `dim` values each. Every sum runs in feature order,
// ((0 + t0) + t1) + …, as the CPU code does.

struct Params {
    rows: u32,
    points: u32,
    dim: u32,
    // Workgroups per row of the dispatch grid, for `assign` (which spreads rows over x and y).
    groups_x: u32,
    // What `pairwise` computes: 0 squared Euclidean distance, 1 inner product.
    score: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> rows: array<f32>;
@group(0) @binding(2) var<storage, read> points: array<f32>;
@group(0) @binding(3) var<storage, read_write> distances: array<f32>;
@group(0) @binding(4) var<storage, read_write> nearest: array<u32>;

const TILE: u32 = 16u;

var<workgroup> row_tile: array<array<f32, 16>, 16>;
var<workgroup> point_tile: array<array<f32, 16>, 16>;

// One invocation per (row, point): distances[row * points + point], or the inner product when params.score is 1.
// Workgroup (x, y) covers points x*16 .. x*16+15 and rows y*16 .. y*16+15; both operands pass through workgroup memory 16 features at a time.
@compute @workgroup_size(16, 16)
fn pairwise(@builtin(local_invocation_id) local: vec3<u32>, @builtin(workgroup_id) group: vec3<u32>) {
    let row = group.y * TILE + local.y;
    let point = group.x * TILE + local.x;
    // The point this invocation loads into point_tile (its row local.y of the tile).
    let loaded_point = group.x * TILE + local.y;
    var total = 0.0;
    for (var start = 0u; start < params.dim; start += TILE) {
        let feature = start + local.x;
        var r = 0.0;
        if (row < params.rows && feature < params.dim) {
            r = rows[row * params.dim + feature];
        }
        row_tile[local.y][local.x] = r;
        var p = 0.0;
        if (loaded_point < params.points && feature < params.dim) {
            p = points[loaded_point * params.dim + feature];
        }
        point_tile[local.y][local.x] = p;
        workgroupBarrier();
        let width = min(TILE, params.dim - start);
        if (params.score == 1u) {
            for (var t = 0u; t < width; t++) {
                total = total + row_tile[local.y][t] * point_tile[local.x][t];
            }
        } else {
            for (var t = 0u; t < width; t++) {
                let difference = row_tile[local.y][t] - point_tile[local.x][t];
                total = total + difference * difference;
            }
        }
        workgroupBarrier();
    }
    if (row < params.rows && point < params.points) {
        distances[row * params.points + point] = total;
    }
}

// One invocation per row: the index of its nearest point (the lowest index on ties) and the squared distance.
@compute @workgroup_size(64)
fn assign(@builtin(global_invocation_id) id: vec3<u32>) {
    let row = id.y * params.groups_x * 64u + id.x;
    if (row >= params.rows) {
        return;
    }
    var best = 0u;
    var best_distance = bitcast<f32>(0x7f800000u);
    let base = row * params.dim;
    for (var c = 0u; c < params.points; c++) {
        let centre = c * params.dim;
        var total = 0.0;
        for (var t = 0u; t < params.dim; t++) {
            let difference = rows[base + t] - points[centre + t];
            total = total + difference * difference;
        }
        if (total < best_distance) {
            best = c;
            best_distance = total;
        }
    }
    nearest[row] = best;
    distances[row] = best_distance;
}
