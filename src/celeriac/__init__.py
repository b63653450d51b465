"""celeriac"""
