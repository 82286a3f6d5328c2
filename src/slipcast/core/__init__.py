"""The ground floor: settings, the contracts between layers, the vocabularies, the error type.

Every layer imports from here; nothing here imports a layer (docs/architecture.md, "Layers").
"""
