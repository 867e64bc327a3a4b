import Checkpoint
import Foundation
let f = try GGUFFile(path: CommandLine.arguments[1])
print(f.version, f.tensors.count, f.metadata.count, f.alignment, f.dataOffset)
for (k, v) in f.metadata { if case .array(_, let a) = v { print(k, "array", a.count) } else { print(k, v) } }
for t in f.tensors.prefix(12) { print(t.name, t.dimensions, t.type, t.offset) }
let t0 = Date()
var n = 0
for t in f.tensors { n += try f.dequantized(t).count }
print(n, Date().timeIntervalSince(t0))
