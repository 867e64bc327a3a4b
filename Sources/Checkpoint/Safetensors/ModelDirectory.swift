import Foundation
import HubCore

/// Writes a model directory the runtime and Hugging Face clients read — model.safetensors,
/// config.json (with the modeling code of a non-standard shape, see `PortableConfig`), the companion files (tokenizer, generation config) copied as they are, and
/// any records (recipe.json, finetune.json) — so that it appears whole or not at all.
public enum ModelDirectory {
    public static func write(config: LlamaConfig, tensors: [String: (shape: [Int], values: [Float])], companions: [String: URL],
                             records: [String: Data], to destination: URL) throws {
        let manager = FileManager.default
        if manager.fileExists(atPath: destination.path) { throw AtomicWriteError.destinationExists(destination.path) }
        let staging = AtomicFile.temporaryURL(besides: destination)
        try manager.createDirectory(at: staging, withIntermediateDirectories: true)
        do {
            try config.validate()
            // A config transformers accepts: standard, or its own architecture with its code.
            let (portable, code) = PortableConfig.make(config)
            try SafetensorsWriter.write(tensors.keys.sorted().map { PendingTensor.float32($0, shape: tensors[$0]!.shape, values: tensors[$0]!.values) },
                                        metadata: ["format": "pt"], to: staging.appendingPathComponent("model.safetensors"))
            try AtomicFile.write(portable.jsonData(), to: staging.appendingPathComponent("config.json"))
            for (name, source) in code.sorted(by: { $0.key < $1.key }) {
                try AtomicFile.write(Data(source.utf8), to: staging.appendingPathComponent(name))
            }
            for (name, source) in companions.sorted(by: { $0.key < $1.key }) {
                try manager.copyItem(at: source, to: staging.appendingPathComponent(name))
            }
            for (name, data) in records.sorted(by: { $0.key < $1.key }) {
                try AtomicFile.write(data, to: staging.appendingPathComponent(name))
            }
            try AtomicFile.commit(staging, to: destination)
        } catch {
            try? manager.removeItem(at: staging)
            throw error
        }
    }
}
