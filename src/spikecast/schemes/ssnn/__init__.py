"""ssnn"""
