package org.mdx.demo.core

/**
 * A small JSON reader for the exported model_config.json and the golden vectors' index.
 *
 * Why not org.json: it is part of android.jar, so code using it cannot be unit-tested on a plain
 * JVM, and this package must hold no android.* dependency. Objects become Map<String, Any?>,
 * arrays List<Any?>, numbers Double, and true/false/null Boolean/null.
 */
object MiniJson {
    /** Parse [text]; throws IllegalArgumentException naming the offset of the first error. */
    fun parse(text: String): Any? {
        val parser = Parser(text)
        parser.skipSpace()
        val value = parser.value()
        parser.skipSpace()
        if (!parser.atEnd()) throw parser.error("unexpected text after the JSON value")
        return value
    }

    private class Parser(private val s: String) {
        private var i = 0

        fun atEnd(): Boolean = i >= s.length

        fun error(what: String): IllegalArgumentException =
            IllegalArgumentException("invalid JSON at offset $i: $what")

        fun skipSpace() {
            while (i < s.length && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) i++
        }

        fun value(): Any? {
            if (atEnd()) throw error("unexpected end of input")
            return when (s[i]) {
                '{' -> obj()
                '[' -> array()
                '"' -> string()
                't' -> literal("true", true)
                'f' -> literal("false", false)
                'n' -> literal("null", null)
                else -> number()
            }
        }

        private fun literal(word: String, result: Any?): Any? {
            if (!s.startsWith(word, i)) throw error("expected $word")
            i += word.length
            return result
        }

        private fun obj(): Map<String, Any?> {
            val out = LinkedHashMap<String, Any?>()
            i++ // '{'
            skipSpace()
            if (i < s.length && s[i] == '}') { i++; return out }
            while (true) {
                skipSpace()
                if (atEnd() || s[i] != '"') throw error("expected a key in double quotes")
                val key = string()
                skipSpace()
                if (atEnd() || s[i] != ':') throw error("expected ':' after key \"$key\"")
                i++
                skipSpace()
                out[key] = value()
                skipSpace()
                if (atEnd()) throw error("unterminated object")
                if (s[i] == ',') { i++; continue }
                if (s[i] == '}') { i++; return out }
                throw error("expected ',' or '}' in object")
            }
        }

        private fun array(): List<Any?> {
            val out = ArrayList<Any?>()
            i++ // '['
            skipSpace()
            if (i < s.length && s[i] == ']') { i++; return out }
            while (true) {
                skipSpace()
                out.add(value())
                skipSpace()
                if (atEnd()) throw error("unterminated array")
                if (s[i] == ',') { i++; continue }
                if (s[i] == ']') { i++; return out }
                throw error("expected ',' or ']' in array")
            }
        }

        private fun string(): String {
            val out = StringBuilder()
            i++ // opening quote
            while (true) {
                if (atEnd()) throw error("unterminated string")
                val c = s[i++]
                when (c) {
                    '"' -> return out.toString()
                    '\\' -> {
                        if (atEnd()) throw error("unterminated escape")
                        when (val e = s[i++]) {
                            '"', '\\', '/' -> out.append(e)
                            'b' -> out.append('\b')
                            'f' -> out.append('\u000C')
                            'n' -> out.append('\n')
                            'r' -> out.append('\r')
                            't' -> out.append('\t')
                            'u' -> {
                                if (i + 4 > s.length) throw error("short \\u escape")
                                val code = s.substring(i, i + 4).toIntOrNull(16) ?: throw error("bad \\u escape")
                                out.append(code.toChar())
                                i += 4
                            }
                            else -> throw error("unknown escape \\$e")
                        }
                    }
                    else -> out.append(c)
                }
            }
        }

        private fun number(): Double {
            val start = i
            while (i < s.length && (s[i] in '0'..'9' || s[i] == '-' || s[i] == '+' || s[i] == '.' || s[i] == 'e' || s[i] == 'E')) i++
            if (start == i) throw error("unexpected character '${s[start]}'")
            // NaN and Infinity are not JSON; Python's json.dumps writes them only when allowed, and the exporter never does.
            return s.substring(start, i).toDoubleOrNull() ?: throw error("bad number '${s.substring(start, i)}'")
        }
    }
}
