/* md5.js */
