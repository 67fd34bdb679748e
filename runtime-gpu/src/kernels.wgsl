// tern-gpu's compute kernels. Every tensor is an array of 32-bit words: float32 values as their bits, integers
// (ONNX int64/int32 indices and labels) as i32, booleans as 0/1, float16 constants two per word and int8/uint8
// constants four per word (little-endian: element 0 in the low bits). Each kernel reads its sizes from `params`
// (up to 32 words, laid out as its Rust caller in exec.rs writes them) and spreads its invocations over a 2-D grid
// of 64-wide workgroups, so a dispatch never needs more than 65,535 workgroups in one dimension.

struct Params {
    v: array<vec4<u32>, 8>,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> in0: array<u32>;
@group(0) @binding(2) var<storage, read> in1: array<u32>;
@group(0) @binding(3) var<storage, read> in2: array<u32>;
@group(0) @binding(4) var<storage, read_write> out0: array<u32>;
@group(0) @binding(5) var<storage, read_write> out1: array<u32>;

fn p(i: u32) -> u32 {
    return params.v[i / 4u][i % 4u];
}

fn pf(i: u32) -> f32 {
    return bitcast<f32>(p(i));
}

fn flat(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 64u;
}

fn f(word: u32) -> f32 {
    return bitcast<f32>(word);
}

fn w(value: f32) -> u32 {
    return bitcast<u32>(value);
}

// params: 0 count, 1 op.
@compute @workgroup_size(64)
fn unary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if (i >= p(0u)) {
        return;
    }
    let word = in0[i];
    let x = f(word);
    var r = word;
    switch p(1u) {
        case 1u: { r = w(max(x, 0.0)); }
        case 2u: { r = w(1.0 / (1.0 + exp(-x))); }
        case 3u: { r = w(tanh(x)); }
        case 4u: { r = w(exp(x)); }
        case 5u: { r = w(log(x)); }
        case 6u: { r = w(sqrt(x)); }
        case 7u: { r = w(abs(x)); }
        case 8u: { r = w(-x); }
        case 9u: { r = w(1.0 / x); }
        case 10u: { r = w(floor(x)); }
        case 11u: { r = w(ceil(x)); }
        // Casts: float → integer (truncating), integer → float, boolean → float, float/integer → boolean, Not.
        case 20u: { r = bitcast<u32>(i32(trunc(x))); }
        case 21u: { r = w(f32(bitcast<i32>(word))); }
        case 22u: { r = w(f32(word)); }
        case 23u: { r = select(0u, 1u, (x != 0.0)); }
        case 24u: { r = select(0u, 1u, (word != 0u)); }
        case 25u: { r = 1u - word; }
        default: {}
    }
    out0[i] = r;
}

// The input index of output element `i` for an operand whose strides start at params[s] (rank 4, left-padded with
// 1-sized dimensions, stride 0 along broadcast dimensions); the output dimensions are params[2..6].
fn broadcast_index(i: u32, s: u32) -> u32 {
    var rest = i;
    var index = 0u;
    for (var d = 3i; d >= 0; d = d - 1i) {
        let dim = max(p(2u + u32(d)), 1u);
        index = index + (rest % dim) * p(s + u32(d));
        rest = rest / dim;
    }
    return index;
}

// params: 0 count, 1 op, 2..6 output dims, 6..10 a strides, 10..14 b strides.
@compute @workgroup_size(64)
fn binary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if (i >= p(0u)) {
        return;
    }
    let aw = in0[broadcast_index(i, 6u)];
    let bw = in1[broadcast_index(i, 10u)];
    let a = f(aw);
    let b = f(bw);
    var r = 0u;
    switch p(1u) {
        case 0u: { r = w(a + b); }
        case 1u: { r = w(a - b); }
        case 2u: { r = w(a * b); }
        case 3u: { r = w(a / b); }
        case 4u: { r = w(max(a, b)); }
        case 5u: { r = w(min(a, b)); }
        case 6u: { r = w(pow(a, b)); }
        case 10u: { r = select(0u, 1u, (a > b)); }
        case 11u: { r = select(0u, 1u, (a < b)); }
        case 12u: { r = select(0u, 1u, (a >= b)); }
        case 13u: { r = select(0u, 1u, (a <= b)); }
        case 14u: { r = select(0u, 1u, (a == b)); }
        case 15u: { r = select(0u, 1u, (aw == bw)); }
        case 20u: { r = aw & bw; }
        case 21u: { r = aw | bw; }
        case 22u: { r = aw ^ bw; }
        default: {}
    }
    out0[i] = r;
}

// Where(condition, x, y). params: 0 count, 2..6 output dims, 6..10 / 10..14 / 14..18 strides of the three inputs.
@compute @workgroup_size(64)
fn where_select(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if (i >= p(0u)) {
        return;
    }
    let condition = in0[broadcast_index(i, 6u)];
    out0[i] = select(in2[broadcast_index(i, 14u)], in1[broadcast_index(i, 10u)], condition != 0u);
}

// out = alpha · A·B (+ beta · C). A [m, k]; B [k, n] ([n, k] when transposed). The sum runs in k order.
// params: 0 m, 1 k, 2 n, 3 B transposed, 4 alpha, 5 beta, 6 has C, 7 C's row stride, 8 C's column stride.
@compute @workgroup_size(64)
fn matmul(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    let m = p(0u);
    let k = p(1u);
    let n = p(2u);
    if (i >= m * n) {
        return;
    }
    let row = i / n;
    let column = i % n;
    let transposed = p(3u) != 0u;
    var sum = 0.0;
    for (var t = 0u; t < k; t = t + 1u) {
        let b = select(in1[t * n + column], in1[column * k + t], transposed);
        sum = sum + f(in0[row * k + t]) * f(b);
    }
    var r = pf(4u) * sum;
    if (p(6u) != 0u) {
        r = r + pf(5u) * f(in2[row * p(7u) + column * p(8u)]);
    }
    out0[i] = w(r);
}

// Reduces the middle axis of an [outer, r, inner] view. params: 0 outer, 1 r, 2 inner, 3 op
// (0 sum, 1 sum of squares, 2 mean, 3 min, 4 max, 5 product, 6 L1, 7 L2), 4 +infinity, 5 −infinity (WGSL has no
// infinite constants).
@compute @workgroup_size(64)
fn reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    let r = p(1u);
    let inner = p(2u);
    if (i >= p(0u) * inner) {
        return;
    }
    let base = (i / inner) * r * inner + i % inner;
    let op = p(3u);
    var acc = 0.0;
    if (op == 3u) {
        acc = pf(4u);
    } else if (op == 4u) {
        acc = pf(5u);
    } else if (op == 5u) {
        acc = 1.0;
    }
    for (var t = 0u; t < r; t = t + 1u) {
        let x = f(in0[base + t * inner]);
        switch op {
            case 1u, 7u: { acc = acc + x * x; }
            case 3u: { acc = min(acc, x); }
            case 4u: { acc = max(acc, x); }
            case 5u: { acc = acc * x; }
            case 6u: { acc = acc + abs(x); }
            default: { acc = acc + x; }
        }
    }
    if (op == 2u) {
        acc = acc / f32(r);
    } else if (op == 7u) {
        acc = sqrt(acc);
    }
    out0[i] = w(acc);
}

// ArgMax / ArgMin along the middle axis of [outer, r, inner]: the first index on ties (the last when asked).
// params: 0 outer, 1 r, 2 inner, 3 is max, 4 select last index.
@compute @workgroup_size(64)
fn arg_reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    let r = p(1u);
    let inner = p(2u);
    if (i >= p(0u) * inner) {
        return;
    }
    let base = (i / inner) * r * inner + i % inner;
    let is_max = p(3u) != 0u;
    let last = p(4u) != 0u;
    var best = f(in0[base]);
    var best_index = 0u;
    for (var t = 1u; t < r; t = t + 1u) {
        let x = f(in0[base + t * inner]);
        let better = select((x < best), (x > best), is_max);
        if (better || (last && x == best)) {
            best = x;
            best_index = t;
        }
    }
    out0[i] = best_index;
}

// Softmax / LogSoftmax along the middle axis of [outer, r, inner]. params: 0 outer, 1 r, 2 inner, 3 log.
@compute @workgroup_size(64)
fn softmax(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    let r = p(1u);
    let inner = p(2u);
    if (i >= p(0u) * inner) {
        return;
    }
    let base = (i / inner) * r * inner + i % inner;
    var largest = f(in0[base]);
    for (var t = 1u; t < r; t = t + 1u) {
        largest = max(largest, f(in0[base + t * inner]));
    }
    var sum = 0.0;
    for (var t = 0u; t < r; t = t + 1u) {
        sum = sum + exp(f(in0[base + t * inner]) - largest);
    }
    let log_form = p(3u) != 0u;
    for (var t = 0u; t < r; t = t + 1u) {
        let shifted = f(in0[base + t * inner]) - largest;
        out0[base + t * inner] = w(select(exp(shifted) / sum, shifted - log(sum), log_form));
    }
}

// TopK along the middle axis of [outer, r, inner]: values (out0) and indices (out1), [outer, k, inner], best
// first; equal values keep their input order (the lower index first). params: 0 outer, 1 r, 2 inner, 3 k,
// 4 largest.
@compute @workgroup_size(64)
fn top_k(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    let r = p(1u);
    let inner = p(2u);
    let k = p(3u);
    if (i >= p(0u) * inner || k == 0u) {
        return;
    }
    let base = (i / inner) * r * inner + i % inner;
    let out_base = (i / inner) * k * inner + i % inner;
    let largest = p(4u) != 0u;
    var filled = 0u;
    for (var t = 0u; t < r; t = t + 1u) {
        let x = f(in0[base + t * inner]);
        if (filled == k) {
            let worst = f(out0[out_base + (k - 1u) * inner]);
            if (!select((x < worst), (x > worst), largest)) {
                continue;
            }
        }
        var at = min(filled, k - 1u);
        loop {
            if (at == 0u) {
                break;
            }
            let before = f(out0[out_base + (at - 1u) * inner]);
            if (!select((x < before), (x > before), largest)) {
                break;
            }
            out0[out_base + at * inner] = out0[out_base + (at - 1u) * inner];
            out1[out_base + at * inner] = out1[out_base + (at - 1u) * inner];
            at = at - 1u;
        }
        out0[out_base + at * inner] = w(x);
        out1[out_base + at * inner] = t;
        filled = min(filled + 1u, k);
    }
}

// Gather along an axis: data as [outer, axis, inner], indices flattened (count `indices`); negative indices count
// from the end, indices outside the axis give 0. params: 0 count, 1 outer, 2 axis size, 3 inner, 4 indices.
@compute @workgroup_size(64)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if (i >= p(0u)) {
        return;
    }
    let axis = p(2u);
    let inner = p(3u);
    let indices = p(4u);
    let within = i % inner;
    let j = (i / inner) % indices;
    let o = i / (inner * indices);
    var index = bitcast<i32>(in1[j]);
    if (index < 0i) {
        index = index + i32(axis);
    }
    if ((index < 0i) || (u32(index) >= axis)) {
        out0[i] = 0u;
        return;
    }
    out0[i] = in0[(o * axis + u32(index)) * inner + within];
}

// GatherElements: data as [outer, axis, inner], indices as [outer, indices axis, inner] (the output's shape);
// negative indices count from the end, indices outside the axis give 0. params: 0 count, 1 data axis size,
// 2 inner, 3 indices axis size.
@compute @workgroup_size(64)
fn gather_elements(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if (i >= p(0u)) {
        return;
    }
    let axis = p(1u);
    let inner = p(2u);
    let o = i / (inner * p(3u));
    var index = bitcast<i32>(in1[i]);
    if (index < 0i) {
        index = index + i32(axis);
    }
    if ((index < 0i) || (u32(index) >= axis)) {
        out0[i] = 0u;
        return;
    }
    out0[i] = in0[(o * axis + u32(index)) * inner + i % inner];
}

// CumSum along the middle axis of [outer, r, inner], in order or reversed, inclusive or exclusive (the sum before
// the element), over floats or 32-bit integers. params: 0 outer, 1 r, 2 inner, 3 exclusive, 4 reverse, 5 integer.
@compute @workgroup_size(64)
fn cum_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    let r = p(1u);
    let inner = p(2u);
    if (i >= p(0u) * inner) {
        return;
    }
    let base = (i / inner) * r * inner + i % inner;
    let exclusive = p(3u) != 0u;
    let reverse = p(4u) != 0u;
    let integer = p(5u) != 0u;
    var float_total = 0.0;
    var int_total = 0i;
    for (var s = 0u; s < r; s = s + 1u) {
        let at = base + select(s, r - 1u - s, reverse) * inner;
        let x = in0[at];
        if (exclusive) {
            out0[at] = select(w(float_total), bitcast<u32>(int_total), integer);
        }
        if (integer) {
            int_total = int_total + bitcast<i32>(x);
        } else {
            float_total = float_total + f(x);
        }
        if (!exclusive) {
            out0[at] = select(w(float_total), bitcast<u32>(int_total), integer);
        }
    }
}

fn packed_byte(word: u32, i: u32, is_signed: bool) -> i32 {
    let byte = (word >> ((i % 4u) * 8u)) & 0xffu;
    let extended = bitcast<i32>(byte << 24u) >> 24u;
    return select(i32(byte), extended, is_signed);
}

// DequantizeLinear: (q − zero_point) · scale, q packed int8/uint8; scale and zero point per index along the axis
// (an [outer, axis, inner] view) or one for all. params: 0 count, 1 axis size, 2 inner, 3 signed, 4 per axis,
// 5 has zero point.
@compute @workgroup_size(64)
fn dequantize(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if (i >= p(0u)) {
        return;
    }
    let is_signed = p(3u) != 0u;
    let q = packed_byte(in0[i / 4u], i, is_signed);
    var c = 0u;
    if (p(4u) != 0u) {
        c = (i / p(2u)) % p(1u);
    }
    var zero = 0i;
    if (p(5u) != 0u) {
        zero = packed_byte(in2[c / 4u], c, is_signed);
    }
    out0[i] = w(f32(q - zero) * f(in1[c]));
}

// Cast from float16 (packed two per word) to float32, exactly (subnormals included). params: 0 count.
@compute @workgroup_size(64)
fn cast_f16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat(gid, groups);
    if (i >= p(0u)) {
        return;
    }
    let bits = (in0[i / 2u] >> ((i % 2u) * 16u)) & 0xffffu;
    let sign_bit = (bits >> 15u) << 31u;
    let exponent = (bits >> 10u) & 0x1fu;
    let mantissa = bits & 0x3ffu;
    var r: u32;
    if (exponent == 0u) {
        r = sign_bit | w(f32(mantissa) * 5.9604644775390625e-8);
    } else if (exponent == 31u) {
        r = sign_bit | 0x7f800000u | (mantissa << 13u);
    } else {
        r = sign_bit | ((exponent + 112u) << 23u) | (mantissa << 13u);
    }
    out0[i] = r;
}
