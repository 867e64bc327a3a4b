import Foundation

/// Validates JSON against the subset of JSON Schema (2020-12) that `schemas/` uses: type,
/// const, enum, properties, required, additionalProperties, items, minItems, minLength,
/// minimum, pattern, oneOf and local `$ref`s. Returns every violation with its JSON path.
public struct JSONSchemaValidator: @unchecked Sendable {  // immutable after init
    let root: [String: Any]

    public init(schemaAt url: URL) throws {
        root = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] ?? [:]
    }

    public func violations(of instance: Any) -> [String] {
        var problems: [String] = []
        check(instance, against: root, at: "$", into: &problems)
        return problems
    }

    private func resolve(_ schema: [String: Any]) -> [String: Any] {
        guard let ref = schema["$ref"] as? String, ref.hasPrefix("#/") else { return schema }
        var node: Any = root
        for part in ref.dropFirst(2).split(separator: "/") { node = (node as? [String: Any])?[String(part)] as Any }
        return node as? [String: Any] ?? [:]
    }

    private func typeName(_ value: Any) -> String {
        switch value {
        case is NSNull: "null"
        case let number as NSNumber:
            if ["c", "B"].contains(String(cString: number.objCType)) { "boolean" }
            else if number.doubleValue == number.doubleValue.rounded() { "integer" } else { "number" }
        case is String: "string"
        case is [Any]: "array"
        case is [String: Any]: "object"
        default: "unknown"
        }
    }

    private func check(_ value: Any, against raw: [String: Any], at path: String, into problems: inout [String]) {
        let schema = resolve(raw)
        let actual = typeName(value)
        if let type = schema["type"] {
            let allowed = (type as? [String]) ?? [type as? String ?? ""]
            let matches = allowed.contains(actual) || (allowed.contains("number") && actual == "integer")
            if !matches { problems.append("\(path): expected \(allowed.joined(separator: "|")), found \(actual)"); return }
        }
        if let constant = schema["const"], !isEqual(constant, value) { problems.append("\(path): expected \(constant)") }
        if let options = schema["enum"] as? [Any], !options.contains(where: { isEqual($0, value) }) {
            problems.append("\(path): \(value) is not one of \(options)")
        }
        if let oneOf = schema["oneOf"] as? [[String: Any]] {
            let passing = oneOf.filter { option in
                var scratch: [String] = []
                check(value, against: option, at: path, into: &scratch)
                return scratch.isEmpty
            }
            if passing.count != 1 { problems.append("\(path): matches \(passing.count) of the oneOf alternatives, expected exactly 1") }
        }
        if let string = value as? String {
            if let minimum = schema["minLength"] as? Int, string.count < minimum { problems.append("\(path): shorter than \(minimum)") }
            if let pattern = schema["pattern"] as? String,
               string.range(of: pattern, options: .regularExpression) == nil {
                problems.append("\(path): '\(string.prefix(60))' does not match \(pattern)")
            }
        }
        if let number = value as? NSNumber, actual == "integer" || actual == "number",
           let minimum = schema["minimum"] as? NSNumber, number.doubleValue < minimum.doubleValue {
            problems.append("\(path): \(number) is below the minimum \(minimum)")
        }
        if let array = value as? [Any] {
            if let minimum = schema["minItems"] as? Int, array.count < minimum { problems.append("\(path): fewer than \(minimum) items") }
            if let items = schema["items"] as? [String: Any] {
                for (index, item) in array.enumerated() { check(item, against: items, at: "\(path)[\(index)]", into: &problems) }
            }
        }
        if let object = value as? [String: Any] {
            for key in schema["required"] as? [String] ?? [] where object[key] == nil {
                problems.append("\(path): missing required '\(key)'")
            }
            let properties = schema["properties"] as? [String: [String: Any]] ?? [:]
            for (key, item) in object {
                if let property = properties[key] {
                    check(item, against: property, at: "\(path).\(key)", into: &problems)
                } else if let additional = schema["additionalProperties"] as? [String: Any] {
                    check(item, against: additional, at: "\(path).\(key)", into: &problems)
                } else if let allowed = schema["additionalProperties"] as? Bool, !allowed {
                    problems.append("\(path): unexpected property '\(key)'")
                }
            }
        }
    }

    private func isEqual(_ a: Any, _ b: Any) -> Bool {
        (a as? NSObject)?.isEqual(b) ?? false
    }
}
