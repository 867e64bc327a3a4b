import Foundation
import HubTestSupport
import Testing

@Suite("hubctl help texts")
struct HelpTextTests {
    static func help(_ command: String?, columns: Int) throws -> String {
        let outcome = try HubctlBinary.run(["help"] + (command.map { [$0] } ?? []), environment: ["COLUMNS": "\(columns)"])
        return outcome.stdout + outcome.stderr
    }

    @Test("every command's help fits 80 columns, and no example or command line in a discussion is broken to get there")
    func eightyColumns() throws {
        let overview = try Self.help(nil, columns: 80)
        let commands = overview.components(separatedBy: "SUBCOMMANDS:").last!.split(separator: "\n")
            .filter { $0.hasPrefix("  ") && !$0.hasPrefix("   ") }.compactMap { $0.split(separator: " ").first.map(String.init) }
        #expect(commands.count > 25 && commands.contains("pull") && commands.contains("lineage"))
        for command in [nil] + commands.map(Optional.some) {
            let narrow = try Self.help(command, columns: 80)
            for line in narrow.split(separator: "\n") where !line.hasPrefix("USAGE:") {
                #expect(line.count <= 80, "hubctl help \(command ?? ""): \(line.count) columns: \(line)")
            }
            // Indented lines of the discussion (examples, commands) come out the same at any width.
            let wide = try Self.help(command, columns: 300)
            let narrowLines = Set(narrow.split(separator: "\n"))
            for line in wide.components(separatedBy: "USAGE:")[0].split(separator: "\n") where line.hasPrefix("  ") {
                let unbroken = narrowLines.contains(line)
                #expect(unbroken, "hubctl help \(command ?? ""): the line '\(line)' is broken at 80 columns")
            }
        }
    }
}
